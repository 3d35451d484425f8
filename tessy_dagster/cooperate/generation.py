"""Generation backends behind one interface; `load_generator` picks one from the settings.

Every backend has the model's tokenizer locally (for its chat template and token counts), a `think_end`
marker, and answers `generate(prompts, max_new_tokens, sampling, stop_at_think_end)` with one `Generation`
per prompt: the new text, its token count in the model's own tokenizer, and why it ended. A caller that
calls again with the same sequence grown may name it (`cache_keys`) and `release` it when done.
`hf` (hf_backend.py) runs transformers in-process with a per-sequence KV cache; `vllm` (vllm_backend.py)
runs vLLM's offline engine in-process; `openai` (openai_backend.py) calls a remote completions server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import GenerationSettings, SamplingSettings
from ..toyworld.tokenizers import THINK_END


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    finish_reason: str  # "length" (hit max_new_tokens), "stop" (end of turn), "think_end" (emitted </think>)


def vllm_finish_reason(finish: str | None, stop_reason, think_end: str, stop_at_think_end: bool) -> str:
    """Our finish reason from vLLM's (offline engine or server): `stop_reason` names the stop string that
    ended the text."""
    if finish == "length":
        return "length"
    if stop_at_think_end and stop_reason == think_end:
        return "think_end"
    return "stop"


class LocalTokenizer:
    """What every backend does locally: the chat template and token counts, from the model's folder."""

    def __init__(self, model_dir: str | Path, think_end: str = THINK_END):
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "tokenizer_config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no model here (tokenizer_config.json missing); materialize "
                                    f"it first or point the settings at a model folder")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.think_end = think_end

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
                   role: str = "model", think_end: str = THINK_END):
    """The backend named in `generation` for the model in `model_dir` (its tokenizer is always read from
    there); `role` picks the role's server URL and memory share."""
    if generation.backend == "hf":
        from .hf_backend import HFGenerator

        return HFGenerator(model_dir, batch_size=generation.batch_size, think_end=think_end)
    if generation.backend == "openai":
        from .openai_backend import OpenAIGenerator

        return OpenAIGenerator.from_settings(model_dir, generation, role=role, think_end=think_end)
    from .vllm_backend import VLLMGenerator

    return VLLMGenerator(model_dir, generation, role=role, think_end=think_end)
