"""The tiny teacher and student: different architectures, tokenizers and style lexicons, trained from scratch.

The teacher learns 1- to 3-step problems, the student only 1- and 2-step ones, so the teacher solves
compositions the student cannot: the capability gap TESSY transfers.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from ..settings import ModelShape, ToyWorldSettings
from ..train.sft import encode_chats, train_causal_lm
from . import tasks
from .tokenizers import train_tokenizer

ROLES = {"teacher": tasks.TEACHER_LEXICON, "student": tasks.STUDENT_LEXICON}
MAX_TOKENS = 256


def causal_lm_config(shape: ModelShape, tokenizer, max_positions: int = 1024):
    """A Llama- or Qwen3-style config sized by `shape`, with the tokenizer's special ids."""
    from transformers import LlamaConfig, Qwen3Config

    common = dict(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=shape.hidden_size * 3,
        num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads, max_position_embeddings=max_positions, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    if shape.architecture == "llama":
        return LlamaConfig(**common)
    return Qwen3Config(head_dim=shape.hidden_size // shape.num_heads, **common)


def training_records(role: str, settings: ToyWorldSettings) -> list[tuple[str, str]]:
    """(prompt, assistant turn) pairs in the role's style, over the role's mix of step counts."""
    mix = settings.teacher_step_mix if role == "teacher" else settings.student_step_mix
    problems = tasks.generate_problems(settings.n_train_problems, mix, settings.seed, settings.n_tests,
                                       settings.test_range, f"train-{role}")
    rng = random.Random(f"traces:{role}:{settings.seed}")
    records = []
    for p in problems:
        other = ROLES["student" if role == "teacher" else "teacher"]
        thinking = tasks.trace_text(tasks.write_trace(p, ROLES[role], rng, other, settings.foreign_marker_share))
        records.append((p.prompt, tasks.assistant_content(thinking, p.solution)))
    return records


def build_toy_model(role: str, settings: ToyWorldSettings, out_dir: str | Path,
                    progress: Callable[[str], None] = print) -> dict:
    """Train the role's tokenizer and model and save both with `save_pretrained`; return metrics."""
    import torch
    from transformers import AutoModelForCausalLM

    if role not in ROLES:
        raise ValueError(f"unknown toy model role {role!r}; choose one of {sorted(ROLES)}")
    shape = settings.teacher if role == "teacher" else settings.student
    records = training_records(role, settings)
    progress(f"{role}: {len(records)} training traces; training the tokenizer")
    tokenizer = train_tokenizer([p + "\n" + a for p, a in records], role, shape.vocab_size, out_dir)
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_config(causal_lm_config(shape, tokenizer))
    n_params = sum(p.numel() for p in model.parameters())
    progress(f"{role}: {shape.architecture} model with {n_params / 1e6:.2f}M parameters; "
             f"training for {settings.train_seconds:.0f} s" +
             (f" or {settings.train_steps} steps, whichever comes first" if settings.train_steps else ""))
    examples = encode_chats(tokenizer, records, MAX_TOKENS)
    report = train_causal_lm(
        model, examples, pad_id=tokenizer.pad_token_id, epochs=1000, max_seconds=settings.train_seconds,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=settings.seed,
        progress=progress, max_steps=settings.train_steps,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {
        "parameters": n_params, "vocab_size": len(tokenizer), "train_steps": report.steps,
        "train_tokens": report.tokens_seen, "train_seconds": round(report.seconds, 1),
        "epochs": round(report.epochs_done, 3), "final_loss": round(report.final_loss, 4),
    }
