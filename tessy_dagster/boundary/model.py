"""The boundary model: two causal token classifiers answering "is the next token style?".

B_T is trained on teacher windows and cuts a teacher chunk at the first position it predicts style; B_S is
trained on student windows and cuts a student chunk at the first position it predicts capability. Labels
are shifted left by one, so each runs on a prefix. The classifier's tokenizer may differ from both
generators', so everything crossing the seam is a character offset.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..settings import BoundarySettings
from .follow import ChunkFollower, first_chunk_token, switch_starts_of
from .windows import shift_left, token_is_style, word_index_of_chars

ROLE_KEEPS = {"student": 1, "teacher": 0}  # the label a role keeps writing; the first other label is its cut
PREDICTORS = {"teacher": "B_T", "student": "B_S"}  # role -> the paper's name; each lives in out_dir/<role>
OTHER_ROLE = {"student": "teacher", "teacher": "student"}


@dataclass
class LabelledWindow:
    input_ids: list[int]
    labels: list[int]  # shifted: labels[j] = style of token j+1, -100 at the end
    token_words: list[int | None]  # word index of each token's first visible character; None for whitespace


def label_windows(tokenizer, texts: list[str], spans: list[list[tuple[int, int]]],
                  max_tokens: int = 512) -> list[LabelledWindow]:
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_tokens)
    out = []
    for text, ids, offsets, window_spans in zip(texts, enc["input_ids"], enc["offset_mapping"], spans):
        offsets = [tuple(o) for o in offsets]
        out.append(LabelledWindow(ids, shift_left(token_is_style(offsets, window_spans)),
                                  word_index_of_chars(text, offsets)))
    return out


def split_by_response(rows: list[dict], validation_share: float, test_share: float, seed: int):
    """Seeded train / validation / test split by response, so overlapping windows of one response never sit
    on both sides. Validation picks the epoch; test is the held-out evaluation."""
    responses = sorted({r["response_id"] for r in rows})
    random.Random(seed).shuffle(responses)
    n_test = max(1, round(len(responses) * test_share))
    n_val = max(1, round(len(responses) * validation_share))
    if len(responses) < n_test + n_val + 1:
        raise ValueError(f"{len(responses)} responses cannot fill a training, validation and test split; "
                         f"sample more traces (boundary.n_traces_per_model)")
    test, val = set(responses[:n_test]), set(responses[n_test:n_test + n_val])
    return ([r for r in rows if r["response_id"] not in test | val], [r for r in rows if r["response_id"] in val],
            [r for r in rows if r["response_id"] in test])


def new_classifier(settings: BoundarySettings, toy_tokenizer_dir):
    """The tokenizer and an untrained 2-class head: on the base checkpoint when one is set, else tiny."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, Qwen3Config

    labels = dict(num_labels=2, id2label={0: "capability", 1: "style"}, label2id={"capability": 0, "style": 1})
    if settings.base_model:
        base = Path(settings.base_model)
        if not (base / "config.json").exists():
            raise FileNotFoundError(f"boundary.base_model {base}: no checkpoint here (config.json missing)")
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForTokenClassification.from_pretrained(str(base), pad_token_id=tokenizer.pad_token_id,
                                                                **labels)
        return tokenizer, model
    tokenizer = AutoTokenizer.from_pretrained(str(toy_tokenizer_dir))
    s = settings
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=s.hidden_size, intermediate_size=s.hidden_size * 2,
        num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads, num_key_value_heads=s.num_heads,
        head_dim=s.hidden_size // s.num_heads, max_position_embeddings=max(1024, s.max_tokens),
        pad_token_id=tokenizer.pad_token_id, **labels,
    )
    return tokenizer, AutoModelForTokenClassification.from_config(config)


def _padded(rows: list[list[int]], pad_id: int, fill_labels: list[list[int]] | None = None):
    """Right-padded ids and attention mask (causal positions of real tokens are untouched), and labels."""
    import torch

    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, :len(row)] = 1
        if fill_labels is not None:
            labels[i, :len(row)] = torch.tensor(fill_labels[i], dtype=torch.long)
    return ids, attention, labels


def predict(model, windows: list[LabelledWindow], batch_size: int, pad_id: int) -> list[list[int]]:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows[start:start + batch_size]
            ids, attention, _ = _padded([w.input_ids for w in batch], pad_id)
            pred = model(input_ids=ids, attention_mask=attention).logits.argmax(-1).tolist()
            out.extend(p[:len(w.input_ids)] for p, w in zip(pred, batch))
    return out


def first_switch_word(kinds: list[int], token_words: list[int | None], start: int, keep: int) -> int | None:
    """The word where the first token from `start` on is not of kind `keep`; None if none is."""
    for t in range(start, len(kinds)):
        if token_words[t] is not None and kinds[t] != keep:
            return token_words[t]
    return None


def switch_cases(window: LabelledWindow, predicted: list[int], keep: int) -> list[tuple[int | None, int | None]]:
    """(true, predicted) first-switch words for a chunk starting at every run of the role's kind.

    Token t's true kind is labels[t-1] and its predicted kind pred[t-1] (the head at t-1 looks ahead), so
    both sequences start at token 1. A case starts wherever a run of `keep` tokens starts: that is where
    the engine hands this role a chunk."""
    true = [None] + window.labels[:-1]
    guess = [None] + predicted[:-1]
    words = window.token_words
    cases = []
    previous = None
    for t in range(1, len(true)):
        if words[t] is None:
            continue
        if true[t] == keep and previous != keep:
            cases.append((first_switch_word(true, words, t, keep), first_switch_word(guess, words, t, keep)))
        previous = true[t]
    return cases


def evaluate(model, windows: list[LabelledWindow], keep: int, batch_size: int, pad_id: int) -> dict:
    """Token accuracy, style precision / recall / F1 with confusion counts, and first-switch accuracy."""
    tp = fp = fn = tn = exact = near = n_cases = 0
    for window, pred in zip(windows, predict(model, windows, batch_size, pad_id)):
        for label, guess in zip(window.labels, pred):
            if label == -100:
                continue
            tp += label == 1 and guess == 1
            fp += label == 0 and guess == 1
            fn += label == 1 and guess == 0
            tn += label == 0 and guess == 0
        for true_word, guess_word in switch_cases(window, pred, keep):
            n_cases += 1
            exact += true_word == guess_word
            near += (true_word == guess_word or
                     (true_word is not None and guess_word is not None and abs(true_word - guess_word) <= 1))
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "token_accuracy": (tp + tn) / total if total else 0.0,
        "style_precision": precision, "style_recall": recall,
        "style_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "switch_exact": exact / n_cases if n_cases else 0.0,
        "switch_within_one_word": near / n_cases if n_cases else 0.0,
        "switch_cases": n_cases,
        "true_style": tp, "false_style": fp, "missed_style": fn, "true_capability": tn, "tokens": total,
        "evaluated_windows": len(windows),
    }


def train_predictor(role: str, rows: list[dict], settings: BoundarySettings, toy_tokenizer_dir, out_dir,
                    progress: Callable[[str], None] = print, mixed_rows: list[dict] = ()) -> dict:
    """Train one predictor on `rows` (one role's annotated windows) and `mixed_rows` (mixed-author windows,
    `dataset.mixed_windows`), keep the epoch with the best validation token accuracy, evaluate it on the
    held-out test responses (its own windows in `held_out`, the mixed ones in `held_out_mixed`), and save it
    to `out_dir`."""
    import torch

    name, keep = PREDICTORS[role], ROLE_KEEPS[role]
    train_rows, val_rows, test_rows = split_by_response(list(rows) + list(mixed_rows), settings.validation_share,
                                                        settings.test_share, settings.seed)
    mixed_ids = {id(r) for r in mixed_rows}  # the split hands back the same row objects
    test_mixed = [r for r in test_rows if id(r) in mixed_ids]
    test_rows = [r for r in test_rows if id(r) not in mixed_ids]
    torch.manual_seed(settings.seed)
    tokenizer, model = new_classifier(settings, toy_tokenizer_dir)

    def labelled(part: list[dict]) -> list[LabelledWindow]:
        return label_windows(tokenizer, [r["text"] for r in part],
                             [[(s["start"], s["end"]) for s in r["style_spans"]] for r in part], settings.max_tokens)

    train, val, test = labelled(train_rows), labelled(val_rows), labelled(test_rows)
    test_mix = labelled(test_mixed) if test_mixed else []
    pad = tokenizer.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    rng = random.Random(settings.seed)
    best, best_state = None, None
    for epoch in range(1, settings.epochs + 1):
        model.train()
        rng.shuffle(train)
        losses = []
        for start in range(0, len(train), settings.batch_size):
            batch = train[start:start + settings.batch_size]
            ids, attention, labels = _padded([w.input_ids for w in batch], pad, [w.labels for w in batch])
            loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        metrics = evaluate(model, val, keep, settings.batch_size, pad)
        progress(f"epoch {epoch}/{settings.epochs} of {name}: train loss {sum(losses) / max(1, len(losses)):.4f}, "
                 f"validation token accuracy {metrics['token_accuracy']:.4f}, style F1 {metrics['style_f1']:.4f}")
        if best is None or metrics["token_accuracy"] > best["token_accuracy"]:
            best, best_state = {**metrics, "epoch": epoch}, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    held_out = evaluate(model, test, keep, settings.batch_size, pad)
    held_out_mixed = evaluate(model, test_mix, keep, settings.batch_size, pad) if test_mix else None
    progress(f"{name} held-out ({len(test)} windows): style F1 {held_out['style_f1']:.4f}, "
             f"first switch exact {held_out['switch_exact']:.4f} / within one word "
             f"{held_out['switch_within_one_word']:.4f}"
             + (f"; mixed-author ({len(test_mix)} windows): style F1 {held_out_mixed['style_f1']:.4f}, first "
                f"switch exact {held_out_mixed['switch_exact']:.4f}" if held_out_mixed else ""))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {"predictor": name, "role": role, "best_epoch": best["epoch"],
            "validation_token_accuracy": best["token_accuracy"], "train_windows": len(train),
            "validation_windows": len(val), "mixed_windows": len(mixed_rows), "held_out": held_out,
            "held_out_mixed": held_out_mixed}


@dataclass(frozen=True)
class Cut:
    offset: int  # characters of the chunk the role keeps
    next_role: str  # who writes next: the other role when the chunk was cut, else the same


class BoundaryPredictor:
    """Batched inference for the cooperative engine, both predictors loaded: `cuts` takes many sequences
    at once (each its context, new chunk and role), runs one forward pass per predictor per batch, and
    answers each with a Cut."""

    def __init__(self, model_dir: str | Path, context_tokens: int = 200, batch_size: int = 64):
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        model_dir = Path(model_dir)
        self.predictors = {}
        for role in PREDICTORS:
            folder = model_dir / role
            if not (folder / "config.json").exists():
                raise FileNotFoundError(f"{folder}: no boundary predictor here; materialize boundary_model first")
            self.predictors[role] = (
                AutoTokenizer.from_pretrained(str(folder)),
                AutoModelForTokenClassification.from_pretrained(str(folder), dtype=torch.float32).eval(),
            )
        self.context_tokens = context_tokens
        self.batch_size = batch_size
        self.tokens_computed = 0  # positions the predictors have run, followers' included (padding excluded)

    def cuts(self, contexts: list[str], chunks: list[str], roles: list[str]) -> list[Cut]:
        """Student chunks end at the first token B_S predicts capability, teacher chunks at the first token
        B_T predicts style; a chunk with no such token is kept whole and its role goes on."""
        out = []
        for chunk, role, starts in zip(chunks, roles, self.switch_starts(contexts, chunks, roles)):
            offset = starts[0] if starts else len(chunk)
            out.append(Cut(offset, role if offset >= len(chunk) else OTHER_ROLE[role]))
        return out

    def switch_starts(self, contexts: list[str], chunks: list[str], roles: list[str]) -> list[list[int]]:
        """Per chunk, the offsets of every token its role's predictor gives to the other role (whitespace
        aside), in order: one forward pass per predictor per batch, over the context's last
        `context_tokens` tokens and the chunk."""
        unknown = sorted({r for r in roles if r not in PREDICTORS})
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; the boundary model knows {sorted(PREDICTORS)}")
        out: list[list[int]] = [[] for _ in chunks]
        for role in PREDICTORS:
            index = [i for i, r in enumerate(roles) if r == role]
            for start in range(0, len(index), self.batch_size):
                part = index[start:start + self.batch_size]
                for i, starts in zip(part, self._switch_starts(role, [contexts[i] for i in part],
                                                               [chunks[i] for i in part])):
                    out[i] = starts
        return out

    def follow(self, role: str, contexts: list[str]) -> ChunkFollower:
        """A follower of `role`'s chunks after `contexts`, token by token while they are decoded."""
        tokenizer, model = self.predictors[role]
        return ChunkFollower(tokenizer, model, ROLE_KEEPS[role], contexts, self.context_tokens, tally=self)

    def _switch_starts(self, role: str, contexts: list[str], chunks: list[str]) -> list[list[int]]:
        import torch

        tokenizer, model = self.predictors[role]
        rows = []  # per sequence: its window's token ids (context tail + chunk), their offsets, the context's end
        enc = tokenizer([context + chunk for context, chunk in zip(contexts, chunks)], add_special_tokens=False,
                        return_offsets_mapping=True)
        for context, row_ids, offsets in zip(contexts, enc["input_ids"], enc["offset_mapping"]):
            first_chunk = first_chunk_token(offsets, len(context))
            keep_from = max(0, first_chunk - self.context_tokens)
            rows.append((row_ids[keep_from:], offsets[keep_from:], len(context)))
        ids, attention, _ = _padded([r[0] for r in rows], tokenizer.pad_token_id)
        with torch.no_grad():
            kinds = model(input_ids=ids, attention_mask=attention).logits.argmax(-1).tolist()
        self.tokens_computed += sum(len(r[0]) for r in rows)
        return [switch_starts_of(row_kinds, offsets, context_chars, chunk, ROLE_KEEPS[role])
                for (_, offsets, context_chars), row_kinds, chunk in zip(rows, kinds, chunks)]
