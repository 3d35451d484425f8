"""Chat records encoded for causal-LM training (loss on the assistant turn only), and a short training loop.

`encode_chat` is the one encoding of an SFT record: the student's SFT on TRL (train/student.py) feeds its
tokens and mask to `SFTTrainer` as they are.

Why a hand-written loop is kept here: `train_causal_lm` trains the toy world's teacher and student from scratch
(toyworld/models.py) on a step budget and a wall-clock cap, with the learning rate on a cosine over whichever
runs out first; no library trainer schedules over wall-clock time, and the loop is kept byte-for-byte so the toy
world (and every demo figure built on it) is reproducible. It is also the baseline of
benchmarks/sft_trl_vs_loop.py. The student's SFT does not use it: that is TRL's `SFTTrainer`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

from ..chat_format import ThinkingFormat, detect_thinking_format


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[int]  # 1 on the assistant turn (what the model must learn to write)


def encode_chat(tokenizer, prompt: str, assistant: str, fmt: ThinkingFormat | None = None) -> Example:
    """The model's own thinking prompt (its generation prompt, left inside the thinking section) plus the
    rest of the assistant turn, which `fmt.assistant_content` wrote (it starts with the thinking opener,
    `<think>\\n` or harmony's analysis channel) and the template's end of turn.

    The two parts are tokenized separately so the mask is exact and the prompt's tokens are the very ones
    the model sees at generation time. `fmt` is detected from the tokenizer's template when not given."""
    fmt = fmt or detect_thinking_format(tokenizer, getattr(tokenizer, "name_or_path", None) or None)
    prefix = fmt.thinking_prompt(tokenizer, prompt)
    continuation = fmt.continuation(assistant) + (fmt.turn_end or tokenizer.eos_token)
    head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    return Example(input_ids=head + tail, loss_mask=[0] * len(head) + [1] * len(tail))


def encode_chats(tokenizer, records: list[tuple[str, str]], max_tokens: int) -> list[Example]:
    """Encode (prompt, assistant) pairs; longer ones are truncated to max_tokens."""
    fmt = detect_thinking_format(tokenizer, getattr(tokenizer, "name_or_path", None) or None)
    out = []
    for prompt, assistant in records:
        ex = encode_chat(tokenizer, prompt, assistant, fmt)
        out.append(Example(ex.input_ids[:max_tokens], ex.loss_mask[:max_tokens]))
    return out


@dataclass
class TrainReport:
    steps: int
    epochs_done: float
    tokens_seen: int
    seconds: float
    first_loss: float
    final_loss: float  # mean over the last 20 steps


def train_causal_lm(
    model, examples: list[Example], *, pad_id: int, epochs: int, max_seconds: float, batch_size: int,
    learning_rate: float, seed: int, progress: Callable[[str], None] = print, log_every: int = 50,
    max_steps: int | None = None,
) -> TrainReport:
    import torch

    if not examples:
        raise ValueError("no training examples")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01, betas=(0.9, 0.95))
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    model.train()
    start, step, tokens, losses = time.monotonic(), 0, 0, []
    order: list[int] = []
    while step < total_steps:
        elapsed = time.monotonic() - start
        done = max(step / total_steps, elapsed / max_seconds)
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
        if not order:
            order = list(range(len(examples)))
            rng.shuffle(order)
        batch = [examples[i] for i in order[:batch_size]]
        order = order[batch_size:]
        input_ids, labels, attention = _collate(batch, pad_id)
        out = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(out.loss.item())
        tokens += int(attention.sum())
        step += 1
        if step % log_every == 0:
            progress(f"step {step}/{total_steps} ({100 * done:.0f}% of the step or time budget), "
                     f"loss {sum(losses[-log_every:]) / log_every:.4f}, {tokens / (time.monotonic() - start):.0f} tok/s")
    model.eval()
    tail = losses[-20:] or [float("nan")]
    return TrainReport(steps=step, epochs_done=step / steps_per_epoch, tokens_seen=tokens,
                       seconds=time.monotonic() - start, first_loss=losses[0] if losses else float("nan"),
                       final_loss=sum(tail) / len(tail))


def _collate(batch: list[Example], pad_id: int):
    import torch

    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        attention[row, :n] = 1
        masked = [t if m else -100 for t, m in zip(ex.input_ids, ex.loss_mask)]
        labels[row, :n] = torch.tensor(masked)
    return ids, labels, attention
