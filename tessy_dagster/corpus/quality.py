"""Quality filters of the SFT corpus, as plain functions: structure, exact and near duplicates, benchmark
decontamination. `filters.build_sft_corpus` applies them in its documented order and counts every drop.

Text is compared as words (`words`): lowercased, split into runs of word characters and runs of operator
characters, every other character (whitespace, brackets, quotes, commas, periods, colons) dropped. Operators
stay because `(x + 2)` and `(x - 2)` are different programs; the rest of punctuation is formatting.

**Structure** (`structure_problem`), per trace, the first failing rule:
- `extra_thinking_section`: the thinking or the answer holds a marker that opens or closes a thinking section
  in either family (`<think>`, `</think>`, harmony's `<|channel|>`, `<|message|>`, `<|start|>`, `<|end|>`,
  `<|return|>`): the record would then carry two sections, or a leaked one, once written in the student's
  format. One thinking section per record is what the student is taught to write.
- `no_code_block`: the prompt asks for code (`asks_for_code`) and the answer has no code block. `fenced`: a
  ``` block; `fenced_or_bare`: a ``` block, or a bare answer that opens with a definition (`def`, `async def`,
  `class`) or parses as Python and defines a function or class at its top level (the toy world's answers are
  bare `def f(x): ...`; real models fence). The default is `fenced_or_bare`, which both pass. This is the
  answer's form, not its correctness: a fenced block of broken code is still a block, and so is a bare `def`
  that does not parse (the barely trained micro models' answers); whether the code passes is the
  execution-verified filter's question.
The empty answer is DuckDB's `empty_answer` in `filters.py`, checked before these.

**Exact and near duplicates** (`find_duplicates`): over the words of prompt + thinking + answer (the whole
training record: two records teach the same thing only if the prompt and what is written about it agree; the
prompt alone would call two different traces of one prompt duplicates, the trace alone would call two
different prompts' identical derivations duplicates). Exact duplicates by a hash of the words first; then
MinHash over `shingle_words`-word shingles, candidates from MinHashLSH, each candidate confirmed on the exact
Jaccard of the two shingle sets, so the threshold is exact and the outcome deterministic (fixed seed). Rows
are taken in the order given (prompt_id order): the first is kept, later ones are dropped as
`duplicate_exact` / `near_duplicate` with the id they duplicate.

**Decontamination** (`BenchmarkIndex`, `contamination`): word n-grams of a text against every benchmark
problem's prompt, suite by suite. Template wording first: an n-gram found in at least 2 of a suite's problems
and in more than `template_share` of them is the suite's wording (the toy suite's "write a python function
f x that transforms x in order step 1", LiveCodeBench's harness instructions and AtCoder's "the input is
given from standard input in the following format"), not a problem's content; the words it covers are masked
out of the problem and out of the text checked, so sharing a suite's wording is never contamination. The
n-grams of what remains (the content) are the problem's; content shorter than n words is one n-gram of its
own (a short problem is contaminated only by the same content, never by a longer text that contains it).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from ..chat_format import FAMILY_DEFAULTS, HARMONY_ENDS
from .correctness import tests_kind

_WORD = re.compile(r"\w+|[-+*/%<>=&|^~]+")


def words(text: str) -> list[str]:
    """The normalized words of a text (see the module's docstring)."""
    return _WORD.findall(text.lower())


# ---- structure -------------------------------------------------------------------------------------------

# What opens or closes a thinking section in either family (chat_format.py); harmony's parts as well as its
# whole markers, so a half-written one counts.
SECTION_MARKERS = tuple(dict.fromkeys((
    FAMILY_DEFAULTS["think"]["think_start"], FAMILY_DEFAULTS["think"]["think_end"],
    "<|channel|>", "<|message|>", "<|start|>", *HARMONY_ENDS)))

# Fallback for a prompt without tests: a request verb, then a code noun in the same sentence, or a fenced block.
_CODE_REQUEST = re.compile(
    r"\b(write|implement|complete|define|code|fix)\b[^.?!\n]{0,80}?\b(python|function|program|code|script|class|"
    r"method)\b|```", re.IGNORECASE)
_FENCED = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)  # a closed fenced block (as evaluate/benchmarks/common.py)
_DEFINITION = re.compile(r"\s*(async\s+def|def|class)\s+\w+")  # a bare answer that opens with a definition

CodeBlockRule = Literal["off", "fenced", "fenced_or_bare"]


def asks_for_code(prompt: str, tests: str | None = None) -> bool:
    """Does the prompt ask for code? Its tests decide where they are of a known kind (a code judge's: yes;
    final_answer's: no); without tests (or of an unknown kind), the keyword rule on the prompt does."""
    kind = tests_kind(tests)
    if kind is not None:
        return kind != "final_answer"
    return bool(_CODE_REQUEST.search(prompt))


def has_code_block(answer: str, rule: CodeBlockRule = "fenced_or_bare") -> bool:
    if rule == "off" or _FENCED.search(answer):
        return True
    if rule == "fenced":
        return False
    if _DEFINITION.match(answer):
        return True
    try:
        tree = ast.parse(answer)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def structure_problem(thinking: str, answer: str, asks_code: bool, *, one_thinking_section: bool = True,
                      code_block: CodeBlockRule = "fenced_or_bare") -> tuple[str, str] | None:
    """(reason, detail) of the first structure rule the trace fails, or None."""
    if one_thinking_section:
        for field, text in (("thinking", thinking), ("answer", answer)):
            found = [(text.index(m), m) for m in SECTION_MARKERS if m in text]
            if found:
                return "extra_thinking_section", f"{min(found)[1]!r} in the {field}"  # the first in the text
    if asks_code and not has_code_block(answer, code_block):
        return "no_code_block", f"the prompt asks for code and the answer has no {code_block.replace('_', ' ')} code"
    return None


# ---- exact and near duplicates ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Duplicate:
    reason: Literal["duplicate_exact", "near_duplicate"]
    of: str  # the kept row it duplicates
    jaccard: float


def shingles(tokens: Sequence[str], size: int) -> set[str]:
    """The `size`-word shingles of a text's words; a text shorter than `size` is one shingle."""
    if len(tokens) <= size:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def find_duplicates(items: Iterable[tuple[str, str]], *, threshold: float = 0.9, num_perm: int = 128,
                    shingle_words: int = 5, exact: bool = True, near: bool = True, candidate_margin: float = 0.1,
                    seed: int = 1) -> dict[str, Duplicate]:
    """Duplicates among `(id, text)` items, which are taken in the given order (the first of a group is kept).
    Returns the dropped ids with what they duplicate. Near duplicates have a Jaccard similarity of their
    shingle sets at or above `threshold`; MinHashLSH proposes candidates at `threshold - candidate_margin`
    (pairs at the threshold are then found with probability near 1) and each is confirmed exactly."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(threshold - candidate_margin, 0.01), num_perm=num_perm) if near else None
    seen: dict[str, str] = {}  # hash of the words -> first id
    kept_shingles: dict[str, set[str]] = {}
    order: dict[str, int] = {}
    dropped: dict[str, Duplicate] = {}
    for position, (item_id, text) in enumerate(items):
        tokens = words(text)
        key = hashlib.sha1(" ".join(tokens).encode("utf-8", "surrogatepass")).hexdigest()
        if exact and key in seen:
            dropped[item_id] = Duplicate("duplicate_exact", seen[key], 1.0)
            continue
        seen.setdefault(key, item_id)
        if not near:
            continue
        grams = shingles(tokens, shingle_words)
        sketch = MinHash(num_perm=num_perm, seed=seed)
        sketch.update_batch([g.encode("utf-8", "surrogatepass") for g in sorted(grams)])
        best = None
        for other in lsh.query(sketch):
            similarity = jaccard(grams, kept_shingles[other])
            if similarity >= threshold and (best is None or (similarity, -order[other]) > (best[1], -order[best[0]])):
                best = (other, similarity)
        if best:
            dropped[item_id] = Duplicate("near_duplicate", best[0], best[1])
            continue
        lsh.insert(item_id, sketch)
        kept_shingles[item_id] = grams
        order[item_id] = position
    return dropped


# ---- decontamination -------------------------------------------------------------------------------------

# Why 13 words and not 8. Public pipelines use 8 (open-r1, Tulu 3) to 13 (GPT-3, OpenThoughts). Our prompts
# and the benchmarks often come from the same task families, so problems share phrasing beyond a suite's
# template: on the toy world (1,000 prompts, 300 held-out problems) 8 drops 322 of the 333 3-step prompts,
# none of which is a benchmark problem (held-out 3-step signatures exclude the prompts'), for sharing one
# step and the connectors around it; 13 drops 52, which share two whole steps with a held-out problem. Verbatim
# copies are still caught at 13: content shorter than 13 words is one n-gram of its own, and a text equal to
# a problem is contaminated whatever its template.
DEFAULT_NGRAM = 13
# An n-gram in more than a fifth of a suite's problems is wording: a problem's own text is its own, and a fifth
# still catches a family's wording within a suite (AtCoder's input-format sentence in LiveCodeBench) as well as
# the harness's. Lower shares start to eat content in small vocabularies (the toy world's first steps each
# occur in about a seventh of the problems).
DEFAULT_TEMPLATE_SHARE = 0.2

@dataclass(frozen=True)
class Contamination:
    suite: str
    problem_id: str
    field: str  # which text of the row matched: prompt, thinking, answer
    ngram: str


@dataclass
class _Suite:
    templates: frozenset[tuple[str, ...]]
    grams: dict[tuple[str, ...], str]  # content n-gram -> the first problem id with it
    whole: dict[tuple[str, ...], str]  # all the words of a problem -> its id


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _content(tokens: Sequence[str], n: int, templates: frozenset) -> list[str]:
    """The words not covered by any of the suite's template n-grams."""
    if not templates:
        return list(tokens)
    covered = [False] * len(tokens)
    for i, gram in enumerate(_ngrams(tokens, n)):
        if gram in templates:
            covered[i:i + n] = [True] * n
    return [t for t, c in zip(tokens, covered) if not c]


def _content_grams(content: Sequence[str], n: int) -> list[tuple[str, ...]]:
    if not content:
        return []
    return _ngrams(content, n) if len(content) >= n else [tuple(content)]


class BenchmarkIndex:
    """The content n-grams of every benchmark problem, per suite, with each suite's template n-grams."""

    def __init__(self, problems: Iterable[tuple[str, str, str]], n: int = DEFAULT_NGRAM,
                 template_share: float = DEFAULT_TEMPLATE_SHARE):
        """`problems`: (suite, problem_id, prompt); suites are checked in the order they first appear."""
        self.n = n
        by_suite: dict[str, list[tuple[str, list[str]]]] = {}
        for suite, problem_id, prompt in problems:
            by_suite.setdefault(suite, []).append((problem_id, words(prompt)))
        self.suites: dict[str, _Suite] = {}
        for suite, rows in by_suite.items():
            df = Counter(g for _, tokens in rows for g in set(_ngrams(tokens, n)))
            templates = frozenset(g for g, c in df.items() if c >= 2 and c > template_share * len(rows))
            grams: dict[tuple[str, ...], str] = {}
            whole: dict[tuple[str, ...], str] = {}
            for problem_id, tokens in rows:
                whole.setdefault(tuple(tokens), problem_id)
                for gram in _content_grams(_content(tokens, n, templates), n):
                    grams.setdefault(gram, problem_id)
            self.suites[suite] = _Suite(templates, grams, whole)

    def template_ngrams(self, suite: str) -> int:
        return len(self.suites[suite].templates)

    def match(self, text: str) -> tuple[str, str, str] | None:
        """(suite, problem_id, n-gram) of the first content n-gram of `text` found in a suite, or None."""
        tokens = words(text)
        for suite, index in self.suites.items():
            problem_id = index.whole.get(tuple(tokens))
            if problem_id is not None:  # the problem itself, however much of it is the suite's wording
                return suite, problem_id, " ".join(tokens)
            for gram in _content_grams(_content(tokens, self.n, index.templates), self.n):
                problem_id = index.grams.get(gram)
                if problem_id is not None:
                    return suite, problem_id, " ".join(gram)
        return None


def contamination(index: BenchmarkIndex, fields: Sequence[tuple[str, str]]) -> Contamination | None:
    """The first of a row's `(field, text)` pairs (e.g. prompt, thinking, answer) that shares a content n-gram
    with a benchmark problem, or None."""
    for field, text in fields:
        hit = index.match(text)
        if hit:
            return Contamination(hit[0], hit[1], field, hit[2])
    return None
