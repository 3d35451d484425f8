"""Generation backends behind one interface; `load_generator` picks one from the settings.

Every backend has the model's tokenizer locally (for its chat template and token counts), the thinking
format detected from that template (`format`: where thinking opens and ends, `think_end` its marker), and
answers `generate(prompts, max_new_tokens, sampling, stop_at_think_end)` with one `Generation`
per prompt (`max_new_tokens`: one limit for all, or one per prompt): the new text, its token count in the
model's own tokenizer, and why it ended. A caller that calls again with the same sequence grown may name
it (`cache_keys`) and `release` it when done.
`hf` (hf_backend.py) runs transformers in-process with a per-sequence KV cache; `vllm` (vllm_backend.py)
runs vLLM's offline engine in-process; `openai` (openai_backend.py) calls a remote completions server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..chat_format import ThinkingFormat, detect_thinking_format
from ..settings import GenerationSettings, SamplingSettings


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    # "length" (hit max_new_tokens), "stop" (end of turn), "think_end" (ended its thinking), "cut" (hf: the
    # caller's `until` stopped it at a cut while decoding)
    finish_reason: str


def per_prompt(max_new_tokens: int | list[int], n: int) -> list[int]:
    """`generate`'s token limit, one for all prompts or one per prompt, as a list of one per prompt."""
    if isinstance(max_new_tokens, int):
        return [max_new_tokens] * n
    if len(max_new_tokens) != n:
        raise ValueError(f"{len(max_new_tokens)} token limits for {n} prompts")
    return list(max_new_tokens)


def vllm_finish_reason(finish: str | None, stop_reason, stop_strings: tuple[str, ...], stop_at_think_end: bool) -> str:
    """Our finish reason from vLLM's (offline engine or server): `stop_reason` names the stop string that
    ended the text; `stop_strings` are the model's end-of-thinking ones."""
    if finish == "length":
        return "length"
    if stop_at_think_end and stop_reason in stop_strings:
        return "think_end"
    return "stop"


class LocalTokenizer:
    """What every backend does locally: the chat template, its thinking format and token counts, from the
    model's folder. `needs_thinking=False` is for a model that never thinks here (the llm annotator): its
    template may have no thinking section, and then `format` and `think_end` are None."""

    def __init__(self, model_dir: str | Path, needs_thinking: bool = True):
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "tokenizer_config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no model here (tokenizer_config.json missing); materialize "
                                    f"it first or point the settings at a model folder")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.format: ThinkingFormat | None
        try:
            self.format = detect_thinking_format(self.tokenizer, model_dir)
        except ValueError:
            if needs_thinking:
                raise
            self.format = None
        self.think_end = self.format.think_end if self.format else None
        # where a backend stops when thinking ends (as strings; the hf backend stops a one-token one by id)
        self.stop_strings: tuple[str, ...] = self.format.stop_strings if self.format else ()

    def thinking_prompt(self, user: str) -> str:
        """The model's own prompt, left inside its thinking section (shared thinking text continues it)."""
        return self._format().thinking_prompt(self.tokenizer, user)

    def answer_prompt(self, user: str, thinking: str) -> str:
        """The thinking prompt, `thinking`, and what closes thinking and opens the answer."""
        return self._format().answer_prompt(self.tokenizer, user, thinking)

    def _format(self) -> ThinkingFormat:
        if self.format is None:
            raise ValueError(f"{self.model_dir}: the chat template has no thinking section")
        return self.format

    def chat_prompt(self, user: str, thinking: bool = True) -> str:
        """The model's own chat template, as text, opening the assistant turn (thinking on or off where the
        template has the switch, as Qwen3's does)."""
        return self.tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                                  tokenize=False, enable_thinking=thinking)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def release(self, cache_keys: list[str]) -> None:
        """Forget the sequences named in `cache_keys`. Only the hf backend keeps per-sequence state (its KV
        cache); vLLM and remote servers cache prefixes on their own."""


def load_generator(model_dir: str | Path, generation: GenerationSettings = GenerationSettings(), *,
                   role: str = "model", needs_thinking: bool = True):
    """The backend named in `generation` for the model in `model_dir` (its tokenizer, and so its thinking
    format, is always read from there); `role` picks the role's server URL and memory share."""
    if generation.backend == "hf":
        from .hf_backend import HFGenerator

        return HFGenerator(model_dir, batch_size=generation.batch_size, needs_thinking=needs_thinking)
    if generation.backend == "openai":
        from .openai_backend import OpenAIGenerator

        return OpenAIGenerator.from_settings(model_dir, generation, role=role, needs_thinking=needs_thinking)
    from .vllm_backend import VLLMGenerator

    return VLLMGenerator(model_dir, generation, role=role, needs_thinking=needs_thinking)
