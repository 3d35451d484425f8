"""The boundary predictor following chunks while they are decoded, one decode step behind the generator.

The round engine asks the predictor about a whole chunk after the fact (`BoundaryPredictor.switch_starts`).
Cutting while decoding asks it after every decode step instead, so it must not read the window again each
time: the follower keeps the predictor's keys and values for the rows in flight and runs it only on tokens it
has not read. It reads text, not the generator's token ids (the two tokenizers may differ), so each step it
tokenizes window + chunk so far and compares with what it read: where the tokenization of the growing text
changed (a token merged with the next), the stale tokens are hidden from attention (a hole in the mask,
positions counted over what is visible) and the new ones read. The predictor thus reads exactly the
tokenization the round engine would read for the same text, and since it is causal, its prediction for a
token does not depend on what follows.
"""

from __future__ import annotations

from ..cooperate.hf_backend import common_prefix


class ChunkFollower:
    """Follows the chunks one role writes for a group of sequences. `contexts[row]`: the trace so far, of
    which the last `context_tokens` predictor tokens are the window (as in `switch_starts`). `advance` is
    called after each decode step with the rows in flight (indices into `contexts`) and their chunks so
    far; it returns each row's switch starts: the offsets in its chunk of the tokens the predictor gives
    to the other role. Rows may leave between calls; a call whose rows are all new starts a new batch
    (the generator decodes its sub-batches one after the other)."""

    def __init__(self, tokenizer, model, keep: int, contexts: list[str], context_tokens: int, tally=None):
        self.tokenizer, self.model, self.keep = tokenizer, model, keep
        self.tally = tally  # an object whose `tokens_computed` adds up the positions this follower runs
        enc = tokenizer(list(contexts), add_special_tokens=False, return_offsets_mapping=True)
        self.windows = [context[offsets[max(0, len(offsets) - context_tokens)][0]:] if offsets else ""
                        for context, offsets in zip(contexts, enc["offset_mapping"])]
        self.starts: list[list[int]] = [[] for _ in contexts]  # each row's switch starts at its last advance
        self.slots: list[int] = []  # the row in each place of the batch

    def _new_batch(self, rows: list[int]) -> None:
        import torch
        from transformers import DynamicCache

        self.slots = list(rows)
        self.anchors = {}  # row -> (ids and offsets before its anchor, the anchor's character offset)
        self.read = {row: [] for row in rows}  # token ids visible in the cache
        self.columns = {row: [] for row in rows}  # their columns in the cache
        self.kinds = {row: [] for row in rows}  # the predicted kind of the token after each
        self.mask = torch.zeros((len(rows), 0), dtype=torch.long)
        self.cache = DynamicCache(config=self.model.config)

    def _keep_rows(self, rows: list[int]) -> None:
        import torch

        known = set(self.slots)
        if not any(row in known for row in rows):
            self._new_batch(rows)
            return
        if any(row not in known for row in rows):
            raise ValueError("rows joined a batch in flight; the follower follows one batch at a time")
        if rows != self.slots:
            index = torch.tensor([self.slots.index(row) for row in rows])
            self.cache.batch_select_indices(index)
            self.mask = self.mask[index]
            self.slots = list(rows)

    def _tokenize(self, rows: list[int], chunks: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Each row's window + chunk as token ids and character offsets. Tokenizing the whole window every
        decode step was a third of the follower's time, so after the first step only the text from an
        anchor on is tokenized: the start of the window's second-to-last token, where the tokenization of
        the text from there on was checked to agree with the whole text's (else the row keeps tokenizing in
        full). Text before the anchor never changes, so neither do its tokens."""
        out: list = [None] * len(rows)
        fresh = [i for i, row in enumerate(rows) if row not in self.anchors]
        if fresh:
            texts = [self.windows[rows[i]] + chunks[i] for i in fresh]
            anchors = []
            for i, (ids, offsets) in zip(fresh, self._encode(texts)):
                out[i] = (ids, offsets)
                anchors.append(max(0, first_chunk_token(offsets, len(self.windows[rows[i]])) - 2))
            tails = self._encode([text[out[i][1][a][0]:] if a else "" for i, text, a in zip(fresh, texts, anchors)])
            for i, a, (tail, _) in zip(fresh, anchors, tails):
                ids, offsets = out[i]
                if a and tail != ids[a:]:  # this text tokenizes otherwise from the anchor on
                    a = 0
                self.anchors[rows[i]] = (ids[:a], offsets[:a], offsets[a][0] if a else 0)
        rest = [i for i in range(len(rows)) if out[i] is None]
        if rest:
            texts = [(self.windows[rows[i]] + chunks[i])[self.anchors[rows[i]][2]:] for i in rest]
            for i, (ids, offsets) in zip(rest, self._encode(texts)):
                head_ids, head_offsets, shift = self.anchors[rows[i]]
                out[i] = (head_ids + ids, head_offsets + [(s + shift, e + shift) for s, e in offsets])
        return out

    def _encode(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Token ids and character offsets. A fast tokenizer's Rust backend directly: the transformers
        wrapper around it took three times as long on a decode step's batch of short texts."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or backend.truncation or backend.padding:  # the wrapper sets those per call
            enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            return [(ids, [tuple(o) for o in offsets]) for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"])]
        return [(e.ids, e.offsets) for e in backend.encode_batch(texts, add_special_tokens=False)]

    def advance(self, rows: list[int], chunks: list[str]) -> list[list[int]]:
        import torch

        self._keep_rows(list(rows))
        encoded = self._tokenize(rows, chunks)
        unread = []
        for slot, (row, (ids, _)) in enumerate(zip(rows, encoded)):
            same = common_prefix(self.read[row], ids)
            if same < len(self.read[row]):  # the text's tokenization changed here: hide the stale tokens
                self.mask[slot, self.columns[row][same:]] = 0
                del self.read[row][same:], self.columns[row][same:], self.kinds[row][same:]
            unread.append(ids[same:])
        width = max(map(len, unread))
        if width:
            base = self.mask.shape[1]
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            step_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            step_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for slot, ids in enumerate(unread):
                step_ids[slot, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                step_mask[slot, :len(ids)] = 1
            self.mask = torch.cat([self.mask, step_mask], dim=1)
            positions = (self.mask.cumsum(-1) - 1).clamp(min=0)[:, base:]
            with torch.no_grad():
                kinds = self.model(input_ids=step_ids, attention_mask=self.mask, position_ids=positions,
                                   past_key_values=self.cache, use_cache=True).logits.argmax(-1).tolist()
            for slot, (row, ids) in enumerate(zip(rows, unread)):
                self.read[row] += ids
                self.columns[row] += range(base, base + len(ids))
                self.kinds[row] += kinds[slot][:len(ids)]
            if self.tally is not None:
                self.tally.tokens_computed += sum(map(len, unread))  # padding excluded
        for row, chunk, (_, offsets) in zip(rows, chunks, encoded):
            self.starts[row] = switch_starts_of(self.kinds[row], offsets, len(self.windows[row]), chunk, self.keep)
        return [self.starts[row] for row in rows]


def first_chunk_token(offsets, context_chars: int) -> int:
    """The index of the first token of the chunk in the tokens of context + chunk (their character
    offsets): the first non-empty token that starts at or after the context's end; len(offsets) if none."""
    return next((t for t, (s, e) in enumerate(offsets) if s >= context_chars and e > s), len(offsets))


def switch_starts_of(kinds: list[int], offsets, context_chars: int, chunk: str, keep: int) -> list[int]:
    """The chunk's switch starts, from the predicted kinds of a row (kinds[t]: the kind of token t + 1) and
    its tokens' character offsets in context + chunk: every chunk token, whitespace aside, whose predicted
    kind is not `keep`. The prediction for token t comes from position t - 1; the opening token of a
    trace has none and stays with the role that wrote it. Whitespace is never a boundary: it goes to
    whoever writes the next word."""
    first = first_chunk_token(offsets, context_chars)
    starts = []
    for t in range(max(first, 1), len(offsets)):
        start, end = offsets[t][0] - context_chars, offsets[t][1] - context_chars
        if chunk[max(0, start):end].strip() and kinds[t - 1] != keep:
            starts.append(max(0, start))
    return starts
