"""Generation backends. `hf` runs transformers in-process: batched sampling over many prompts at once.

Every backend answers `generate(prompts, max_new_tokens, sampling, stop_at_think_end)` with one
`Generation` per prompt: the new text, its token count in the model's own tokenizer, and why it ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import SamplingSettings
from ..toyworld.tokenizers import THINK_END


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    finish_reason: str  # "length" (hit max_new_tokens), "stop" (end of turn), "think_end" (emitted </think>)


class HFGenerator:
    """A causal LM and its tokenizer from a `save_pretrained` folder, sampling in left-padded batches."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no model here (config.json missing); materialize it first")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.batch_size = batch_size
        self.eos_id = self.tokenizer.eos_token_id
        self.think_end_id = self.tokenizer.convert_tokens_to_ids(THINK_END)

    def chat_prompt(self, user: str, thinking: bool = True) -> str:
        """The model's own chat template, as text, opening the assistant turn (thinking on or off where the
        template has the switch, as Qwen3's does)."""
        return self.tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                                  tokenize=False, enable_thinking=thinking)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

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
        stops = [self.eos_id] + ([self.think_end_id] if stop_at_think_end else [])
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=self.tokenizer.pad_token_id)
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
            results.append(Generation(text=text, n_tokens=len(kept), finish_reason=reason))
        return results


def load_generator(backend: str, model_dir: str | Path, batch_size: int = 64) -> HFGenerator:
    if backend != "hf":
        raise ValueError(f"generation backend {backend!r} is not available; the built ones are: 'hf'")
    return HFGenerator(model_dir, batch_size=batch_size)
