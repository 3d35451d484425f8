"""The two annotators behind one interface: `annotate(texts)` gives each window's style spans, or why not.

`lexicon` marks the phrases of a style lexicon (fast; the toy world and bootstrapping). `llm` asks an
instruct model for the window's style phrases as a JSON array of strings and aligns them to the text in
order; a reply that cannot be aligned rejects its window whole, with the reason (TESSY.md section 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..chat_format import strip_thinking
from ..settings import BoundarySettings, SamplingSettings
from .windows import lexicon_spans

REJECTION_REASONS = ("not_json", "not_a_list", "not_a_string", "empty_span", "span_not_found")

# Our wording of the paper's annotation instructions (the reference prompt's content, not its text).
ANNOTATION_PROMPT = """\
Below is a window of a model's reasoning. Find its style phrases: transitional, filler or tone-setting \
phrases that carry no reasoning of their own. They include
- hesitation, tone or attitude: "well", "okay", "so", "let's see", "I think";
- transition or setup: "to begin with", "in this case", "for example", "but if";
- narration or connection between steps.
Do not mark actual reasoning: deductions, explanations, descriptions of code or formulas, or problem-solving \
steps.
Copy every style phrase verbatim from the text, in the order it appears. Reply with a JSON array of strings \
and nothing else, or [] if there are none.

Text:
{text}"""


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Annotation:
    spans: list[tuple[int, int]] | None  # character offsets, end exclusive; None when rejected
    reason: str = ""  # one of REJECTION_REASONS when rejected
    reply: str = ""  # the annotator model's raw reply (llm only)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_reply(reply: str) -> list[str]:
    """The reply as a list of non-empty strings. A surrounding ``` fence or thinking before the answer (a
    leading <think> block, or harmony's analysis channel before its final one) is tolerated (instruct models
    add them); anything else that is not such a JSON list raises Rejected."""
    body = strip_thinking(reply.strip()).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as err:
        raise Rejected("not_json", f"{err.msg} at character {err.pos}") from None
    if not isinstance(value, list):
        raise Rejected("not_a_list", f"a JSON {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise Rejected("not_a_string", f"item {i} is {item!r}")
        if not item.strip():
            raise Rejected("empty_span", f"item {i} is empty")
    return value


def locate_spans(text: str, phrases: list[str]) -> list[tuple[int, int]]:
    """Each phrase found verbatim by forward search from the end of the previous one (so repeated phrases
    need repeated occurrences, and out-of-order phrases are not found)."""
    spans, position = [], 0
    for i, phrase in enumerate(phrases):
        start = text.find(phrase, position)
        if start < 0:
            raise Rejected("span_not_found", f"item {i} {phrase!r} is not in the text after character {position}")
        spans.append((start, start + len(phrase)))
        position = start + len(phrase)
    return spans


def align_reply(text: str, reply: str) -> list[tuple[int, int]]:
    return locate_spans(text, parse_reply(reply))


class LexiconAnnotator:
    name = "lexicon"

    def __init__(self, lexicon: tuple[str, ...]):
        if not lexicon:
            raise ValueError("the lexicon annotator needs at least one phrase: set boundary.lexicon to the style "
                             "phrases to mark, or choose boundary.annotator 'llm' with an annotator_model")
        self.lexicon = lexicon

    def annotate(self, texts: list[str]) -> list[Annotation]:
        return [Annotation(lexicon_spans(text, self.lexicon)) for text in texts]


class LLMAnnotator:
    """Greedy replies from an instruct model through a generation backend, batched over windows."""

    name = "llm"

    def __init__(self, generator, max_new_tokens: int):
        self.generator, self.max_new_tokens = generator, max_new_tokens

    def annotate(self, texts: list[str]) -> list[Annotation]:
        prompts = [self.generator.chat_prompt(ANNOTATION_PROMPT.format(text=t), thinking=False) for t in texts]
        replies = self.generator.generate(prompts, self.max_new_tokens, SamplingSettings(temperature=0.0),
                                          stop_at_think_end=False)
        out = []
        for text, reply in zip(texts, replies):
            try:
                out.append(Annotation(align_reply(text, reply.text), reply=reply.text))
            except Rejected as rejected:
                out.append(Annotation(None, rejected.reason, reply.text))
        return out


def load_annotator(settings: BoundarySettings):
    if settings.annotator == "lexicon":
        return LexiconAnnotator(settings.lexicon or ())
    from ..cooperate.generation import load_generator

    # an instruct model need not think: its template may have no thinking section
    generator = load_generator(settings.annotator_model, settings.annotator_generation, role="annotator",
                               needs_thinking=False)
    return LLMAnnotator(generator, settings.annotator_max_new_tokens)
