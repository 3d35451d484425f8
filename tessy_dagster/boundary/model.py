"""The boundary model: a causal token classifier answering "is the next token style?".

Trained on annotated windows with labels shifted left by one, so it runs on a prefix. Its tokenizer may
differ from both generators', so everything crossing the seam is a character offset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..settings import BoundarySettings
from .windows import shift_left, token_is_style

ROLE_KEEPS = {"student": 1, "teacher": 0}  # the label a role keeps writing; the first other label is its cut


@dataclass
class LabelledWindow:
    input_ids: list[int]
    labels: list[int]  # shifted: labels[j] = style of token j+1, -100 at the end


def label_windows(tokenizer, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[LabelledWindow]:
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offsets, window_spans in zip(enc["input_ids"], enc["offset_mapping"], spans):
        out.append(LabelledWindow(ids, shift_left(token_is_style([tuple(o) for o in offsets], window_spans))))
    return out


def classifier_config(settings: BoundarySettings, tokenizer):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size, intermediate_size=settings.hidden_size * 2,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads, head_dim=settings.hidden_size // settings.num_heads,
        max_position_embeddings=1024, num_labels=2, pad_token_id=tokenizer.pad_token_id,
        id2label={0: "capability", 1: "style"}, label2id={"capability": 0, "style": 1},
    )


def _batches(windows: list[LabelledWindow], batch_size: int, pad_id: int):
    import torch

    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        width = max(len(w.input_ids) for w in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, w in enumerate(batch):  # right padding: causal positions of real tokens are untouched
            ids[row, :len(w.input_ids)] = torch.tensor(w.input_ids)
            labels[row, :len(w.labels)] = torch.tensor(w.labels)
            attention[row, :len(w.input_ids)] = 1
        yield ids, labels, attention


def evaluate_tokens(model, windows: list[LabelledWindow], batch_size: int, pad_id: int) -> dict:
    """Token accuracy and style precision / recall / F1 with confusion counts."""
    import torch

    tp = fp = fn = tn = 0
    with torch.no_grad():
        for ids, labels, attention in _batches(windows, batch_size, pad_id):
            pred = model(input_ids=ids, attention_mask=attention).logits.argmax(-1)
            valid = labels != -100
            tp += int(((pred == 1) & (labels == 1) & valid).sum())
            fp += int(((pred == 1) & (labels == 0) & valid).sum())
            fn += int(((pred == 0) & (labels == 1) & valid).sum())
            tn += int(((pred == 0) & (labels == 0) & valid).sum())
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "token_accuracy": (tp + tn) / total if total else 0.0,
        "style_precision": precision, "style_recall": recall,
        "style_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "true_style": tp, "false_style": fp, "missed_style": fn, "true_capability": tn, "tokens": total,
    }


def train_boundary_model(tokenizer, windows: list[LabelledWindow], settings: BoundarySettings, out_dir: str | Path,
                         progress: Callable[[str], None] = print) -> dict:
    """Train on a seeded split, keep the epoch with the best validation token accuracy, save it."""
    import copy

    import torch
    from transformers import AutoModelForTokenClassification

    if len(windows) < 2:
        raise ValueError(f"boundary training needs at least 2 windows, got {len(windows)}")
    rng = random.Random(settings.seed)
    order = list(range(len(windows)))
    rng.shuffle(order)
    n_val = max(1, round(len(windows) * settings.validation_share))
    val = [windows[i] for i in order[:n_val]]
    train = [windows[i] for i in order[n_val:]]
    torch.manual_seed(settings.seed)
    model = AutoModelForTokenClassification.from_config(classifier_config(settings, tokenizer))
    opt = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    pad = tokenizer.pad_token_id
    best, best_state = None, None
    for epoch in range(1, settings.epochs + 1):
        model.train()
        rng.shuffle(train)
        losses = []
        for ids, labels, attention in _batches(train, settings.batch_size, pad):
            loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        metrics = evaluate_tokens(model, val, settings.batch_size, pad)
        progress(f"epoch {epoch}/{settings.epochs}: train loss {sum(losses) / len(losses):.4f}, "
                 f"validation token accuracy {metrics['token_accuracy']:.4f}, style F1 {metrics['style_f1']:.4f}")
        if best is None or metrics["token_accuracy"] > best["token_accuracy"]:
            best, best_state = {**metrics, "epoch": epoch}, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {**best, "train_windows": len(train), "validation_windows": len(val)}


class BoundaryPredictor:
    """Batched inference for the cooperative engine: where does each new chunk stop being its role's?"""

    def __init__(self, model_dir: str | Path, context_tokens: int = 200, batch_size: int = 64):
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: no boundary model here; materialize boundary_model first")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForTokenClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.context_tokens = context_tokens
        self.batch_size = batch_size

    def cuts(self, contexts: list[str], chunks: list[str], roles: list[str]) -> list[int]:
        """For each (context, chunk, role): the character offset in `chunk` where the role's span ends
        (len(chunk) when it runs to the end). Student spans end at the first token predicted capability,
        teacher spans at the first predicted style."""
        out: list[int] = []
        for start in range(0, len(chunks), self.batch_size):
            sl = slice(start, start + self.batch_size)
            out.extend(self._cuts_batch(contexts[sl], chunks[sl], roles[sl]))
        return out

    def _cuts_batch(self, contexts, chunks, roles):
        import torch

        rows = []  # per sequence: token ids, and (chunk token index -> char offset in chunk)
        for context, chunk in zip(contexts, chunks):
            enc = self.tokenizer(context + chunk, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
            first_chunk = next((i for i, (s, e) in enumerate(offsets) if s >= len(context) and e > s), len(ids))
            keep_from = max(0, first_chunk - self.context_tokens)
            rows.append((ids[keep_from:], first_chunk - keep_from,
                         [(s - len(context), e - len(context)) for s, e in offsets[first_chunk:]]))
        if not rows:
            return []
        width = max(1, max(len(r[0]) for r in rows))
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row_ids, _, _) in enumerate(rows):
            ids[i, :len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            attention[i, :len(row_ids)] = 1
        with torch.no_grad():
            pred = self.model(input_ids=ids, attention_mask=attention).logits.argmax(-1).tolist()
        cuts = []
        for (row_ids, first, spans), row_pred, role, chunk in zip(rows, pred, roles, chunks):
            keep = ROLE_KEEPS[role]
            cut = len(chunk)
            for k, (start, end) in enumerate(spans):
                position = first + k - 1  # the prediction for token t comes from position t-1
                if position < 0:
                    continue  # no context yet: the opening token stays with the role that wrote it
                if not chunk[max(0, start):end].strip():
                    continue  # whitespace is never a boundary: it goes to whoever writes the next word
                if row_pred[position] != keep:
                    cut = max(0, start)
                    break
            cuts.append(cut)
        return cuts
