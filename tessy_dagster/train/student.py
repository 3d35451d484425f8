"""Full-parameter SFT of the student on an arm's corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..corpus.filters import load_chat_records
from ..settings import SftSettings
from .sft import encode_chats, train_causal_lm

MAX_TOKENS = 384


def finetune_student(*, student_dir, corpus_path, settings: SftSettings, out_dir,
                     progress: Callable[[str], None] = print) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = load_chat_records(corpus_path)
    if not records:
        raise ValueError(f"{corpus_path}: the corpus is empty, nothing to train on; see sft_corpus' drop counts")
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32)
    examples = encode_chats(tokenizer, records, MAX_TOKENS)
    progress(f"fine-tuning the student on {len(examples)} records for {settings.epochs} epochs")
    report = train_causal_lm(model, examples, pad_id=tokenizer.pad_token_id, epochs=settings.epochs,
                             max_seconds=settings.max_seconds, batch_size=settings.batch_size,
                             learning_rate=settings.learning_rate, seed=settings.seed, progress=progress,
                             log_every=10)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {"records": len(records), "train_steps": report.steps, "epochs": round(report.epochs_done, 3),
            "train_tokens": report.tokens_seen, "first_loss": round(report.first_loss, 4),
            "final_loss": round(report.final_loss, 4), "train_seconds": round(report.seconds, 1)}
