"""The `hf` backend: transformers in-process, sampling left-padded batches, with a per-sequence KV cache.

The cooperative engine calls a model many times per trace, each time with the whole text so far. Without a
cache every call would recompute the prompt and every earlier span (on the toy models that prefill was
58% of tessy's generation time). So a caller may name its sequences (`cache_keys`): the backend keeps each
named sequence's keys and values, and on the next call recomputes only what follows the longest common
token prefix of the new prompt and the cached tokens. Matching tokens, not text, keeps it exact whatever
the tokenizer does at a handoff: where the new tokenization diverges, the cache simply stops there.

A batch is still plain left padding. Row i's uncached tail is at most `window` tokens, the longest tail in
the batch; every row recomputes its last `window` tokens and takes the rest from its cache, so the cache
part of the batch is rectangular and the attention mask needs no holes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import SamplingSettings
from .generation import Generation, LocalTokenizer


@dataclass
class _Cached:
    """One sequence's keys and values, in parts laid end to end along the token axis: each call adds a part
    for what it computed and keeps the earlier parts as they are, so a round copies only its new tokens."""
    ids: list[int]  # the tokens whose keys and values are held
    parts: list  # tensors [layers, 2 (keys, values), heads, tokens, head_dim]; their tokens add up to len(ids)

    def head(self, n: int) -> list:
        """The parts (views) that hold the first n tokens."""
        out = []
        for part in self.parts:
            if n <= 0:
                break
            out.append(part[:, :, :, :n])
            n -= part.shape[3]
        return out


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _cheapest_window(tails: list[int]) -> int:
    """The batch window w that minimises the tokens computed: every row recomputes w tokens, and each row
    with a longer tail first fills its cache in a separate pass padded to the longest such tail."""
    def cost(w: int) -> int:
        longer = [t for t in tails if t > w]
        return len(tails) * w + len(longer) * max(longer, default=0)
    return min(sorted(set(tails)), key=cost)


class HFGenerator(LocalTokenizer):
    """A causal LM and its tokenizer from a `save_pretrained` folder."""

    max_cache_parts = 16  # a sequence's cached parts are joined into one when there are this many

    def __init__(self, model_dir: str | Path, batch_size: int = 64, needs_thinking: bool = True):
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__(model_dir, needs_thinking)
        if not (self.model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no model here (config.json missing); materialize it first")
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.batch_size = batch_size
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        # The end-of-thinking marker (from the chat template's format) stops generation by id when it is
        # one token; a longer one by string (slower, but exact).
        self.think_end_id = self._token_id(self.think_end)
        # What ends the assistant's turn in its template stops as the eos token does (the same token in most
        # templates; in harmony <|return|> ends the answer and <|call|> a tool call).
        turn_ends = ([self.format.turn_end] if self.format else []) + (
            ["<|return|>", "<|call|>"] if self.format and self.format.family == "harmony" else [])
        self.turn_end_ids = sorted({i for i in map(self._token_id, turn_ends) if i is not None and i != self.eos_id})
        self._cache: dict[str, _Cached] = {}
        self.reused_tokens = self.computed_tokens = 0  # prompt tokens taken from the cache / run through the model

    def generate(self, prompts: list[str], max_new_tokens: int, sampling: SamplingSettings,
                 stop_at_think_end: bool, cache_keys: list[str] | None = None) -> list[Generation]:
        if cache_keys is not None and len(cache_keys) != len(prompts):
            raise ValueError(f"{len(cache_keys)} cache keys for {len(prompts)} prompts")
        keys = cache_keys or [None] * len(prompts)
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            out.extend(self._generate_batch(prompts[start:end], keys[start:end], max_new_tokens, sampling,
                                            stop_at_think_end))
        return out

    def _token_id(self, text: str | None) -> int | None:
        """The id of `text` where it is one token of the vocabulary, else None."""
        if not text:
            return None
        marker_id = self.tokenizer.convert_tokens_to_ids(text)
        return marker_id if marker_id is not None and marker_id != self.tokenizer.unk_token_id else None

    def release(self, cache_keys: list[str]) -> None:
        for key in cache_keys:
            self._cache.pop(key, None)

    def _tails(self, keys, ids) -> list[int]:
        """Per row, the tokens not in its cache. At least the last one is recomputed: generation starts from
        its logits."""
        return [len(row) - (min(common_prefix(self._cache[k].ids, row), len(row) - 1) if k in self._cache else 0)
                for k, row in zip(keys, ids)]

    def _generate_batch(self, prompts, keys, max_new_tokens, sampling, stop_at_think_end):
        import torch

        if not prompts:
            return []
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        tails = self._tails(keys, ids)
        # A sequence new to this model (a whole prompt to read) would make every row recompute that many
        # tokens. Rows whose tail is longer than the cheapest window first fill their cache on their own.
        window = _cheapest_window(tails)
        long = [i for i, t in enumerate(tails) if t > window and keys[i] is not None]
        if long:
            self._extend_cache([keys[i] for i in long], [ids[i][:-1] for i in long])
            for i in long:
                tails[i] = 1  # all but the last token are cached now
        window = max(tails)
        total = max(len(row) for row in ids)
        input_ids, mask = self._left_pad(ids, total)
        self._count_prompt_tokens(ids, window)

        thinking_stops = stop_at_think_end and self.think_end is not None
        stops = [self.eos_id] + self.turn_end_ids + (
            [self.think_end_id] if thinking_stops and self.think_end_id is not None else [])
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=self.pad_id,
                      return_dict_in_generate=True)
        if thinking_stops and self.think_end_id is None:
            kwargs.update(stop_strings=[self.think_end], tokenizer=self.tokenizer)
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                          top_k=sampling.top_k or None)
        else:
            kwargs.update(do_sample=False)
        if total - window > 0:
            kwargs["past_key_values"] = self._batch_cache(keys, ids, total, window)
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new = out.sequences[:, total:].tolist()
        results, stored = [], []
        for i, row_new in enumerate(new):
            reason, n_kept = "length", len(row_new)
            for j, t in enumerate(row_new):
                if t in stops:
                    reason = "think_end" if thinking_stops and t == self.think_end_id else "stop"
                    n_kept = j
                    break
            text = self.tokenizer.decode(row_new[:n_kept], skip_special_tokens=False)
            n_tokens = n_kept
            if thinking_stops and self.think_end in text:  # a marker of several tokens, stopped by string
                text, reason = text[:text.index(self.think_end)], "think_end"
                n_tokens = self.count_tokens([text])[0]
            results.append(Generation(text=text, n_tokens=n_tokens, finish_reason=reason))
            # The last sampled token was never fed back, so the cache ends one token short of it.
            stored.append(ids[i] + row_new[:min(n_kept, len(row_new) - 1)])
        self._store(keys, out.past_key_values, ids, window, stored)
        return results

    def _count_prompt_tokens(self, ids, window: int) -> None:
        """Every row recomputes its last `window` tokens (all of them when shorter) and takes the rest from
        its cache."""
        self.computed_tokens += sum(min(window, len(row)) for row in ids)
        self.reused_tokens += sum(max(0, len(row) - window) for row in ids)

    def _left_pad(self, ids, total: int):
        import torch

        input_ids = torch.full((len(ids), total), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), total), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, total - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, total - len(row):] = 1
        return input_ids, mask

    def _extend_cache(self, keys, ids) -> None:
        """Run the model over `ids` (one forward, no sampling) and cache every row's keys and values."""
        import torch
        from transformers import DynamicCache

        total, window = max(len(row) for row in ids), max(self._tails(keys, ids))
        input_ids, mask = self._left_pad(ids, total)
        self._count_prompt_tokens(ids, window)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = (self._batch_cache(keys, ids, total, window) if total > window
                else DynamicCache(config=self.model.config))
        with torch.no_grad():
            out = self.model(input_ids=input_ids[:, total - window:], attention_mask=mask,
                             position_ids=positions[:, total - window:], past_key_values=past, use_cache=True,
                             logits_to_keep=1)
        self._store(keys, out.past_key_values, ids, window, ids)

    def _batch_cache(self, keys, ids, total: int, window: int):
        """A DynamicCache of total - window columns: row i's first len(row) - window tokens from its cache,
        right-aligned so that they meet the row's recomputed tail; zeros (masked) on the left."""
        import torch
        from transformers import DynamicCache

        cached = total - window
        some = next(iter(self._cache.values())).parts[0]
        kv = torch.zeros((some.shape[0], 2, len(ids), some.shape[2], cached, some.shape[4]), dtype=some.dtype)
        for i, row in enumerate(ids):
            n = len(row) - window
            if n <= 0:
                continue
            column = cached - n
            for part in self._cache[keys[i]].head(n):
                kv[:, :, i, :, column:column + part.shape[3]] = part
                column += part.shape[3]
        return DynamicCache(ddp_cache_data=[(layer[0], layer[1]) for layer in kv], config=self.model.config)

    def _store(self, keys, cache, ids, window: int, tokens: list[list[int]]) -> None:
        """Keep each named row's keys and values for `tokens` (its prompt `ids[i]`, then what was generated
        after it), from a batch left-padded to the longest prompt that recomputed the last `window` tokens:
        the earlier ones came from the row's cache and are kept from there, not copied."""
        import torch

        if all(key is None for key in keys):
            return
        total = max(len(row) for row in ids)
        starts = [total - len(row) for row in ids]
        reused = [max(0, len(row) - window) for row in ids]
        # One copy of the columns computed in this call, for the whole batch, then one slice per row: far
        # fewer tensor ops than slicing every layer of every row. The clone lets the batch's tensor go.
        low = min(start + n for start, n in zip(starts, reused))
        kv = torch.stack([torch.stack((layer.keys[:, :, low:], layer.values[:, :, low:])) for layer in cache.layers])
        for i, (key, row, start, n) in enumerate(zip(keys, tokens, starts, reused)):
            if key is None:
                continue
            kept = self._cache[key].head(n) if n > 0 else []
            if len(kept) >= self.max_cache_parts:  # one part again, so copying a row stays a few ops
                kept = [torch.cat(kept, dim=3)]
            self._cache[key] = _Cached(row, kept + [kv[:, :, i, :, start + n - low:start + len(row) - low].clone()])
