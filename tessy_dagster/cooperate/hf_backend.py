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
from .generation import Generation, LocalTokenizer, per_prompt


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


def _warpers(sampling: SamplingSettings):
    """transformers' logits warpers for the sampling settings (None: greedy), in generate's order. top_k 0
    means no top-k, as in vLLM."""
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    if sampling.temperature <= 0:
        return None
    warpers = LogitsProcessorList([TemperatureLogitsWarper(sampling.temperature)])
    if sampling.top_k:
        warpers.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    return warpers


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
    decodes_with_until = True  # `generate` takes `until`: the engine may stop a sequence mid-decode

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

    def generate(self, prompts: list[str], max_new_tokens: int | list[int], sampling: SamplingSettings,
                 stop_at_think_end: bool, cache_keys: list[str] | None = None, until=None) -> list[Generation]:
        """`until(rows, texts) -> stops`: asked after every decode step with the rows still in flight (their
        indices in `prompts`) and the text each has generated so far; a row it answers True for stops there
        (finish reason "cut"). The engine cuts chunks at a boundary this way, while decoding."""
        if cache_keys is not None and len(cache_keys) != len(prompts):
            raise ValueError(f"{len(cache_keys)} cache keys for {len(prompts)} prompts")
        keys = cache_keys or [None] * len(prompts)
        limits = per_prompt(max_new_tokens, len(prompts))
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            batch_until = None if until is None else (
                lambda rows, texts, start=start: until([start + row for row in rows], texts))
            out.extend(self._generate_batch(prompts[start:end], keys[start:end], limits[start:end], sampling,
                                            stop_at_think_end, batch_until))
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

    def _generate_batch(self, prompts, keys, max_new_tokens, sampling, stop_at_think_end, until=None):
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
        stops = {self.eos_id, *self.turn_end_ids}
        if thinking_stops and self.think_end_id is not None:
            stops.add(self.think_end_id)
        stop_string = self.think_end if thinking_stops and self.think_end_id is None else None
        past = self._batch_cache(keys, ids, total, window) if total - window > 0 else None
        new, reasons = self._decode(input_ids, mask, past, window, max_new_tokens, sampling, stops, stop_string,
                                    until, keys, ids)
        results = []
        for row_new, reason in zip(new, reasons):
            n_kept = len(row_new) - 1 if reason == "stop" and row_new[-1] in stops else len(row_new)
            text = self.tokenizer.decode(row_new[:n_kept], skip_special_tokens=False)
            n_tokens = n_kept
            if reason == "stop" and thinking_stops and row_new[-1] == self.think_end_id:
                reason = "think_end"
            if stop_string and stop_string in text:  # a marker of several tokens, stopped by string
                text, reason = text[:text.index(stop_string)], "think_end"
                n_tokens = self.count_tokens([text])[0]
            results.append(Generation(text=text, n_tokens=n_tokens, finish_reason=reason))
        return results

    def _decode(self, input_ids, mask, past, window: int, max_new_tokens: list[int], sampling: SamplingSettings,
                stops: set[int], stop_string: str | None, until, keys, ids):
        """The decode loop: every row in flight gets one token a step; a row leaves the batch (its keys and
        values go to its cache) when it samples a stop token, reaches `max_new_tokens`, shows `stop_string`,
        or `until` says so. Our own loop rather than `model.generate`, because a row that stops must stop
        costing compute: generate keeps finished rows in its batch until the last one ends.

        Returns each row's new tokens (a stop token included as the last) and why it ended: "length",
        "stop" (a stop token or string) or "cut" (`until` stopped it)."""
        import torch
        from transformers import DynamicCache

        total = input_ids.shape[1]
        new: list[list[int]] = [[] for _ in ids]
        reasons = ["length"] * len(ids)
        slots = list(range(len(ids)))  # the row in each place of the batch
        past = past if past is not None else DynamicCache(config=self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, step_positions = input_ids[:, total - window:], positions[:, total - window:]
        warp = _warpers(sampling)
        while True:
            with torch.no_grad():
                logits = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                                    past_key_values=past, use_cache=True, logits_to_keep=1).logits[:, -1, :]
            if warp is None:
                tokens = logits.argmax(-1)
            else:
                tokens = torch.multinomial(torch.softmax(warp(None, logits.float()), dim=-1), 1)[:, 0]
            leaving = set()
            for slot, (row, token) in enumerate(zip(slots, tokens.tolist())):
                new[row].append(token)
                if token in stops:
                    reasons[row] = "stop"
                    leaving.add(slot)
                elif len(new[row]) >= max_new_tokens[row]:
                    leaving.add(slot)
            if stop_string or until:
                texts = self.tokenizer.batch_decode([new[row][:-1] if slot in leaving and reasons[row] == "stop"
                                                     else new[row] for slot, row in enumerate(slots)],
                                                    skip_special_tokens=False)
                for slot, (row, text) in enumerate(zip(slots, texts)):
                    if stop_string and stop_string in text and slot not in leaving:
                        reasons[row] = "stop"
                        leaving.add(slot)
                if until:
                    for slot, stop in enumerate(until(slots, texts)):
                        if stop and slot not in leaving:
                            reasons[slots[slot]] = "cut"
                            leaving.add(slot)
            if leaving:
                # The last sampled token was never fed back, so a row's cache ends one token short of it.
                gone = sorted(leaving)
                self._store([keys[slots[s]] for s in gone], past, [ids[slots[s]] for s in gone], window,
                            [ids[slots[s]] + new[slots[s]][:-1] for s in gone], total, gone)
            staying = [s for s in range(len(slots)) if s not in leaving]
            if not staying:
                return new, reasons
            if leaving:
                index = torch.tensor(staying)
                past.batch_select_indices(index)
                mask, tokens = mask[index], tokens[index]
                slots = [slots[s] for s in staying]
            mask = torch.cat([mask, mask.new_ones((len(slots), 1))], dim=1)
            step_ids, step_positions = tokens[:, None], mask.sum(-1, keepdim=True) - 1

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

    def _store(self, keys, cache, ids, window: int, tokens: list[list[int]], total: int | None = None,
               slots: list[int] | None = None) -> None:
        """Keep each named row's keys and values for `tokens` (its prompt `ids[i]`, then what was generated
        after it), from a batch left-padded to `total` (the longest prompt) that recomputed the last `window`
        tokens: the earlier ones came from the row's cache and are kept from there, not copied. `slots`: the
        rows' places in the batch's cache (default: 0, 1, ...), when only some of its rows are stored."""
        import torch

        if all(key is None for key in keys):
            return
        total = total if total is not None else max(len(row) for row in ids)
        slots = slots if slots is not None else list(range(len(ids)))
        starts = [total - len(row) for row in ids]
        reused = [max(0, len(row) - window) for row in ids]
        # One copy of the columns computed in this call, for all the rows, then one slice per row: far fewer
        # tensor ops than slicing every layer of every row. The clone lets the batch's tensor go.
        low = min(start + n for start, n in zip(starts, reused))
        index = torch.tensor(slots)
        kv = torch.stack([torch.stack((layer.keys[index, :, low:], layer.values[index, :, low:]))
                          for layer in cache.layers])
        for i, (key, row, start, n) in enumerate(zip(keys, tokens, starts, reused)):
            if key is None:
                continue
            kept = self._cache[key].head(n) if n > 0 else []
            if len(kept) >= self.max_cache_parts:  # one part again, so copying a row stays a few ops
                kept = [torch.cat(kept, dim=3)]
            self._cache[key] = _Cached(row, kept + [kv[:, :, i, :, start + n - low:start + len(row) - low].clone()])
