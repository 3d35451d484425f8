"""Where a model thinks and where it answers, read from its own chat template.

Two families of thinking sections exist among the models TESSY distils between:
- `think`: `<think>\\n ... \\n</think>\\n\\n answer` (Qwen3, DeepSeek-R1 and its distills, the toy world's two
  templates). Some templates open `<think>\\n` in their generation prompt (DeepSeek-R1's newer one, the toy
  templates), others leave it to the model (Qwen3, which has an `enable_thinking` switch).
- `harmony` (GPT-OSS): `<|start|>assistant<|channel|>analysis<|message|> ... <|end|>` then
  `<|start|>assistant<|channel|>final<|message|> answer <|return|>`; the generation prompt is
  `<|start|>assistant`, and the model picks its channel.

`detect_thinking_format(tokenizer, folder)` finds the family by rendering the template with sentinel
messages (an assistant turn whose thinking field, `reasoning_content` or `thinking`, holds a sentinel shows
the markers around it and the text that ends the turn), and, for templates that drop thinking from past
turns (DeepSeek-R1's), by its generation prompt and source. Everything that builds a prompt, splits a reply
or writes an SFT record then asks the `ThinkingFormat`, never a constant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"
HARMONY_FINAL = "<|channel|>final<|message|>"
HARMONY_ENDS = ("<|return|>", "<|end|>", "<|call|>")  # what ends a harmony message
_USER, _THINKING, _ANSWER = "TESSY-USER-7f3a", "TESSY-THINKING-7f3a", "TESSY-ANSWER-7f3a"
THINKING_FIELDS = ("reasoning_content", "thinking")  # Qwen3's, GPT-OSS's


@dataclass(frozen=True)
class ThinkingFormat:
    """A model's thinking section: its markers and how its template opens and closes it."""

    family: Literal["think", "harmony"]
    think_start: str  # "<think>" / "<|channel|>analysis<|message|>"
    think_end: str  # what ends thinking: "</think>" / "<|end|>" (the end of the analysis message)
    opener: str  # what opens thinking right after the generation prompt: "<think>\n" / think_start
    answer_opener: str  # after the thinking text, closes it and opens the answer: "\n</think>\n\n" / ...
    turn_end: str  # what ends the assistant's turn (SFT appends it): "<|im_end|>" / "<|return|>"
    thinking_field: str | None = None  # the message field the template renders as thinking, if any
    thinking_switch: str | None = None  # the template's on/off variable (Qwen3: enable_thinking), if any

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where a backend stops when the model ends its thinking."""
        return (self.think_end,)

    def generation_prompt(self, tokenizer, user: str, thinking: bool = True) -> str:
        """The template's own rendering of one user turn with the assistant's turn opened (thinking on or
        off where the template has the switch)."""
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                             tokenize=False, enable_thinking=thinking)

    def thinking_prompt(self, tokenizer, user: str) -> str:
        """A prompt that leaves the model inside its thinking section: the generation prompt with thinking
        on, plus the opener where the template does not write it. Shared thinking text is appended to it."""
        prompt = self.generation_prompt(tokenizer, user, thinking=True)
        return prompt if prompt.endswith(self.opener) else prompt + self.opener

    def answer_prompt(self, tokenizer, user: str, thinking: str) -> str:
        """The thinking prompt, the thinking, and what closes thinking and opens the answer."""
        return self.thinking_prompt(tokenizer, user) + thinking + self.answer_opener

    def split(self, text: str) -> tuple[str, str, bool]:
        """(thinking, answer, closed) of a continuation of `thinking_prompt`, both stripped.

        Not closed (no end of thinking): all of it is thinking, no answer. Harmony: the answer is the final
        channel's message, up to its end (`<|return|>`, `<|end|>`); thinking that ended without a final
        channel after it (another channel, or nothing) has no answer, and `closed` is still True. A reply
        that opens thinking itself (a prompt without the opener) is split the same way."""
        if text.lstrip().startswith(self.think_start):
            text = text.lstrip()[len(self.think_start):]
        if self.think_end not in text:
            return text.strip(), "", False
        thinking, rest = text.split(self.think_end, 1)
        if self.family == "harmony":
            if HARMONY_FINAL not in rest:
                return thinking.strip(), "", True
            rest = rest.split(HARMONY_FINAL, 1)[1]
            ends = [rest.index(end) for end in HARMONY_ENDS if end in rest]
            return thinking.strip(), rest[:min(ends)].strip() if ends else rest.strip(), True
        if self.turn_end and self.turn_end in rest:
            rest = rest[:rest.index(self.turn_end)]
        return thinking.strip(), rest.strip(), True

    def assistant_content(self, thinking: str, answer: str) -> str:
        """The assistant turn as text in this model's own format, from its thinking opener on: what the
        model writes after the generation prompt (an SFT record's assistant content).
        think: `<think>\\n{thinking}\\n</think>\\n\\n{answer}`; harmony:
        `<|channel|>analysis<|message|>{thinking}<|end|><|start|>assistant<|channel|>final<|message|>{answer}`."""
        return self.opener + thinking + self.answer_opener + answer

    def assistant_message(self, thinking: str, answer: str) -> dict:
        """The assistant turn as a chat message for this model's template: thinking in the field the template
        renders (`reasoning_content`, `thinking`) where it has one, else inline as `assistant_content`."""
        if self.thinking_field:
            return {"role": "assistant", "content": answer, self.thinking_field: thinking}
        return {"role": "assistant", "content": self.assistant_content(thinking, answer)}

    def continuation(self, assistant: str) -> str:
        """What follows `thinking_prompt` in an assistant turn written by `assistant_content`."""
        if not assistant.startswith(self.opener):
            raise ValueError(f"assistant turn must start with {self.opener!r} (this model's thinking opener), "
                             f"got {assistant[:30]!r}")
        return assistant[len(self.opener):]


FAMILY_DEFAULTS = {
    "think": dict(think_start="<think>", think_end="</think>", opener="<think>\n", answer_opener="\n</think>\n\n"),
    "harmony": dict(think_start=HARMONY_ANALYSIS, think_end="<|end|>", opener=HARMONY_ANALYSIS,
                    answer_opener="<|end|><|start|>assistant" + HARMONY_FINAL),
}
# The `think` family's format with the defaults, for callers that have no tokenizer (tests, old records).
THINK = ThinkingFormat(family="think", turn_end="", **FAMILY_DEFAULTS["think"])


def template_source(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one
        template = template.get("default") or next(iter(template.values()), None)
    return template or None


def detect_thinking_format(tokenizer, folder: str | Path | None = None) -> ThinkingFormat:
    """The thinking format of `tokenizer`'s chat template (loaded from `folder`, which errors name)."""
    where = str(folder) if folder is not None else "this tokenizer"
    source = template_source(tokenizer)
    if source is None:
        raise ValueError(f"{where}: the tokenizer has no chat template; save one with the tokenizer "
                         f"(`chat_template` in tokenizer_config.json, or chat_template.jinja beside it)")

    def render(messages, generation: bool, **extra) -> str:
        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False,
                                                 **extra)
        except Exception as err:  # a template's raise_exception, or a template error
            raise ValueError(f"{where}: the chat template failed to render a user turn and an assistant turn "
                             f"({type(err).__name__}: {err}); fix the template") from err

    user = [{"role": "user", "content": _USER}]
    prompt = render(user, True, enable_thinking=True)
    switch = "enable_thinking" if "enable_thinking" in source else None
    # A template that renders the thinking field shows its markers around the sentinel.
    for field in THINKING_FIELDS:
        full = render(user + [{"role": "assistant", "content": _ANSWER, field: _THINKING}], False)
        if _THINKING in full and _ANSWER in full and full.index(_THINKING) < full.index(_ANSWER):
            before, rest = full.split(_THINKING, 1)
            between, after = rest.split(_ANSWER, 1)
            turn_end = after.strip() or (tokenizer.eos_token or "")
            if before.endswith(HARMONY_ANALYSIS):
                family = "harmony"
                opener = HARMONY_ANALYSIS
                think_end = next((end for end in HARMONY_ENDS if between.startswith(end)), None)
                if think_end is None or HARMONY_FINAL not in between:
                    raise ValueError(f"{where}: the chat template's analysis message is not followed by an end "
                                     f"marker and a final channel ({between!r}); not a harmony template")
            elif "<think>" in before:
                family, think_end = "think", "</think>"
                opener = before[before.rindex("<think>"):]
                if think_end not in between:
                    raise ValueError(f"{where}: the chat template opens <think> but closes it with {between!r}")
            else:
                break  # the field renders as plain text: no thinking section
            return ThinkingFormat(family=family, think_start=FAMILY_DEFAULTS[family]["think_start"],
                                  think_end=think_end, opener=opener, answer_opener=between, turn_end=turn_end,
                                  thinking_field=field, thinking_switch=switch)
    # Templates that drop thinking from past turns (DeepSeek-R1's) still open it in the generation prompt,
    # or at least name its markers.
    if prompt.rstrip().endswith("<think>") or ("<think>" in source and "</think>" in source):
        full = render(user + [{"role": "assistant", "content": _ANSWER}], False)
        turn_end = full.split(_ANSWER, 1)[1].strip() if _ANSWER in full else ""
        defaults = FAMILY_DEFAULTS["think"]
        opener = prompt[prompt.rindex("<think>"):] if prompt.rstrip().endswith("<think>") else defaults["opener"]
        return ThinkingFormat(family="think", think_start="<think>", think_end="</think>", opener=opener,
                              answer_opener=defaults["answer_opener"], turn_end=turn_end or (tokenizer.eos_token or ""),
                              thinking_switch=switch)
    if HARMONY_ANALYSIS in source or ("<|channel|>" in source and "analysis" in source):
        return ThinkingFormat(family="harmony", turn_end="<|return|>", thinking_switch=switch,
                              **FAMILY_DEFAULTS["harmony"])
    raise ValueError(f"{where}: the chat template has no thinking section (neither <think>...</think> nor "
                     f"harmony's analysis channel); TESSY needs a reasoning model: use one whose template "
                     f"renders its thinking, or fix the template")


_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def strip_thinking(reply: str) -> str:
    """The answer of a reply of either family, for callers that do not know the model's format (the llm
    annotator): harmony's final-channel message when there is one, else the reply without a leading
    `<think>...</think>` block."""
    if HARMONY_FINAL in reply:
        rest = reply.rsplit(HARMONY_FINAL, 1)[1]
        ends = [rest.index(end) for end in HARMONY_ENDS if end in rest]
        return rest[:min(ends)] if ends else rest
    if HARMONY_ANALYSIS in reply:  # analysis only: no answer
        return ""
    return _THINK_BLOCK.sub("", reply, count=1)


def load_thinking_format(folder: str | Path) -> ThinkingFormat:
    """The thinking format of the tokenizer saved in `folder` (a model's or a served model's tokenizer folder)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; point the settings at the model's tokenizer folder")
    return detect_thinking_format(AutoTokenizer.from_pretrained(str(folder)), folder)
