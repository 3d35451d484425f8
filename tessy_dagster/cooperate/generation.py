"""Generation backends behind one interface; `load_generator` picks one from the settings.

Every backend has the model's tokenizer locally (for its chat template and token counts), a `think_end`
marker, and answers `generate(prompts, max_new_tokens, sampling, stop_at_think_end)` with one `Generation`
per prompt: the new text, its token count in the model's own tokenizer, and why it ended. `hf` runs
transformers in-process, sampling batches of prompts at once; `vllm` (vllm_backend.py) runs vLLM's offline
engine in-process; `openai` (openai_backend.py) calls a remote completions server.
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


class HFGenerator(LocalTokenizer):
    """A causal LM and its tokenizer from a `save_pretrained` folder, sampling in left-padded batches."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64, think_end: str = THINK_END):
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__(model_dir, think_end)
        if not (self.model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no model here (config.json missing); materialize it first")
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.batch_size = batch_size
        self.eos_id = self.tokenizer.eos_token_id
        # A marker that is one token stops generation by id; a longer one by string (slower, but exact).
        marker_id = self.tokenizer.convert_tokens_to_ids(think_end)
        self.think_end_id = marker_id if marker_id is not None and marker_id != self.tokenizer.unk_token_id else None

    def generate(self, prompts: list[str], max_new_tokens: int, sampling: SamplingSettings,
                 stop_at_think_end: bool) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._generate_batch(prompts[start:start + self.batch_size], max_new_tokens, sampling,
                                            stop_at_think_end))
        return out

    def _generate_batch(self, prompts, max_new_tokens, sampling, stop_at_think_end):
        import torch

        if not prompts:
            return []
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        stops = [self.eos_id] + ([self.think_end_id] if stop_at_think_end and self.think_end_id is not None else [])
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=self.tokenizer.pad_token_id)
        if stop_at_think_end and self.think_end_id is None:
            kwargs.update(stop_strings=[self.think_end], tokenizer=self.tokenizer)
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                          top_k=sampling.top_k or None)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            seqs = self.model.generate(**enc, **kwargs)
        new = seqs[:, enc["input_ids"].shape[1]:].tolist()
        results = []
        for ids in new:
            reason, kept = "length", ids
            for i, t in enumerate(ids):
                if t in stops:
                    reason = "think_end" if t == self.think_end_id else "stop"
                    kept = ids[:i]
                    break
            text = self.tokenizer.decode(kept, skip_special_tokens=False)
            if stop_at_think_end and self.think_end in text:  # a marker of several tokens, stopped by string
                text, reason = text[:text.index(self.think_end)], "think_end"
                kept = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            results.append(Generation(text=text, n_tokens=len(kept), finish_reason=reason))
        return results


def load_generator(model_dir: str | Path, generation: GenerationSettings = GenerationSettings(), *,
                   role: str = "model", think_end: str = THINK_END):
    """The backend named in `generation` for the model in `model_dir` (its tokenizer is always read from
    there); `role` picks the role's server URL and memory share."""
    if generation.backend == "hf":
        return HFGenerator(model_dir, batch_size=generation.batch_size, think_end=think_end)
    if generation.backend == "openai":
        from .openai_backend import OpenAIGenerator

        return OpenAIGenerator.from_settings(model_dir, generation, role=role, think_end=think_end)
    from .vllm_backend import VLLMGenerator

    return VLLMGenerator(model_dir, generation, role=role, think_end=think_end)
