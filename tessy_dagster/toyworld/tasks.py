"""The toy task family: a function of x described in words, composed of 1 to 3 primitive steps.

Each problem has hidden tests (input, expected output) checked in the sandbox, as a code benchmark is.
The thinking-trace writer lays out one line a step: a style marker from the writer's lexicon (a style
span), then the derivation with the previous expression bracketed (a capability span).

The style gap between the toy teacher and student is their marker lexicons alone (and the tokenizers they
were trained with): the traces are equally long and say the same steps. The paper's real gap is wider
(GPT-OSS-120B's traces average 22,196 tokens against Qwen3-8B's 18,179, each model has its own word-frequency
fingerprint, and the teacher digresses to verify itself). Whether the toy needed that wider gap was decided
before the Table 1 runs (benchmarks/table1.py), from the per-span NLL measured on the demo (`make demo` at
6ab69ee, the drift metrics of each arm's corpus under the base student): teacher_only's style tokens cost
the student 1.57 nats a token against 0.41 for its own markers (tessy's corpus: 0.40), and its answers 1.38
against 0.003, so the teacher's style is far from free to learn even as five phrases; the teacher_only
student also lost 1-step problems it solved before (1.00 -> 0.78). The toy keeps the lexicon gap, and Table 1
reports the same decomposition per seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FUNCTION_NAME = "f"

# op -> (words for the description, how it wraps the previous expression, constants it takes)
PRIMITIVES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "add": ("adds {k}", "({e} + {k})", tuple(range(1, 10))),
    "sub": ("subtracts {k}", "({e} - {k})", tuple(range(1, 10))),
    "mul": ("multiplies by {k}", "({e} * {k})", tuple(range(2, 6))),
    "div": ("integer-divides by {k}", "({e} // {k})", tuple(range(2, 6))),
    "neg": ("negates it", "(-{e})", (0,)),
    "square": ("squares it", "({e} ** 2)", (0,)),
    "abs": ("takes the absolute value", "abs({e})", (0,)),
}

# Distinct style lexicons: the teacher's and the student's discourse markers share no word.
TEACHER_LEXICON = ("Hmm, wait.", "Let me think.", "Alright, okay.", "Hmm, let me see.", "Okay, right.")
STUDENT_LEXICON = ("Now then,", "Next up,", "Good, moving on:", "Nice, continuing:", "Simple enough:")
STYLE_LEXICON = TEACHER_LEXICON + STUDENT_LEXICON
# What the lexicon annotator marks: the markers' parts, so that the blends small models write
# ("Alright, wait.") are style too.
STYLE_PHRASES = tuple(sorted({part for marker in STYLE_LEXICON for part in re.split(r"(?<=,) ", marker)}))


@dataclass(frozen=True)
class Problem:
    problem_id: str
    steps: tuple[tuple[str, int], ...]
    tests: tuple[tuple[int, int], ...]

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def prompt(self) -> str:
        # Numbered steps: a model a few minutes old can look a step up by its number.
        parts = [f"step {i} {PRIMITIVES[op][0].format(k=k)}" for i, (op, k) in enumerate(self.steps, start=1)]
        return f"Write a Python function {FUNCTION_NAME}(x) that transforms x in order: " + ", then ".join(parts) + "."

    def expressions(self) -> list[str]:
        """The expression after each step; the last is the solution."""
        out, e = [], "x"
        for op, k in self.steps:
            e = PRIMITIVES[op][1].format(e=e, k=k)
            out.append(e)
        return out

    @property
    def solution(self) -> str:
        return f"def {FUNCTION_NAME}(x):\n    return {self.expressions()[-1]}"


def evaluate_steps(steps, x: int) -> int:
    for op, k in steps:
        if op == "add":
            x = x + k
        elif op == "sub":
            x = x - k
        elif op == "mul":
            x = x * k
        elif op == "div":
            x = x // k
        elif op == "neg":
            x = -x
        elif op == "square":
            x = x * x
        elif op == "abs":
            x = abs(x)
        else:
            raise ValueError(f"unknown primitive {op!r}")
    return x


def signature(steps) -> str:
    return "|".join(f"{op}{k}" for op, k in steps)


def random_problem(rng: random.Random, n_steps: int, n_tests: int, test_range: int, split: str) -> Problem:
    steps = []
    for _ in range(n_steps):
        op = rng.choice(sorted(PRIMITIVES))
        steps.append((op, rng.choice(PRIMITIVES[op][2])))
    xs = rng.sample(range(-test_range, test_range + 1), n_tests)
    tests = tuple((x, evaluate_steps(steps, x)) for x in xs)
    sig = signature(steps)
    return Problem(problem_id=f"{split}-{n_steps}-{sig}-{rng.randrange(10**6):06d}", steps=tuple(steps), tests=tests)


def generate_problems(
    n: int, step_mix: tuple[float, float, float], seed: int, n_tests: int, test_range: int, split: str,
    exclude: set[str] = frozenset(),
) -> list[Problem]:
    """n problems whose step counts follow step_mix; signatures in `exclude` are skipped where the
    step count has room (1- and 2-step families are small, so those may repeat across splits)."""
    if abs(sum(step_mix) - 1.0) > 1e-6:
        raise ValueError(f"step_mix must sum to 1, got {step_mix}")
    rng = random.Random(f"{split}:{seed}")
    out: list[Problem] = []
    counts = [round(n * share) for share in step_mix]
    counts[max(range(3), key=lambda i: step_mix[i])] += n - sum(counts)
    for n_steps, count in zip((1, 2, 3), counts):
        for _ in range(count):
            problem = random_problem(rng, n_steps, n_tests, test_range, split)
            for _ in range(20):  # a few redraws to stay out of `exclude`
                if signature(problem.steps) not in exclude:
                    break
                problem = random_problem(rng, n_steps, n_tests, test_range, split)
            out.append(problem)
    rng.shuffle(out)
    return out


def heldout_problems(per_steps: int, seed: int, n_tests: int, test_range: int, exclude: set[str]) -> list[Problem]:
    """The benchmark: `per_steps` problems of each step count, 3-step ones unseen in training."""
    return generate_problems(3 * per_steps, (1 / 3, 1 / 3, 1 / 3), seed, n_tests, test_range, "heldout", exclude)


# --- the thinking-trace writer -------------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    text: str
    kind: str  # "style" or "capability"


def write_trace(problem: Problem, lexicon: tuple[str, ...], rng: random.Random,
                foreign: tuple[str, ...] = (), foreign_share: float = 0.0) -> list[Span]:
    """One thinking trace: per step a style marker, then the derivation; then the code line.

    A `foreign_share` of the markers come from another lexicon: like real models, each has seen other
    styles (and so continues sensibly after them) but writes its own far more often."""
    def marker() -> str:
        pool = foreign if foreign and rng.random() < foreign_share else lexicon
        return rng.choice(pool) + " "

    spans: list[Span] = []
    expressions = problem.expressions()
    for i, ((op, k), expr) in enumerate(zip(problem.steps, expressions), start=1):
        spans.append(Span(marker(), "style"))
        spans.append(Span(f"Step {i} {PRIMITIVES[op][0].format(k=k)}: {expr}.\n", "capability"))
    spans.append(Span(marker(), "style"))
    spans.append(Span(f"Code: return {expressions[-1]}", "capability"))
    return spans


def trace_text(spans: list[Span]) -> str:
    return "".join(s.text for s in spans)


def assistant_content(thinking: str, answer: str) -> str:
    """The assistant turn as TESSY's corpus writes it: the thinking section, then the answer."""
    return f"<think>\n{thinking}\n</think>\n\n{answer}"
