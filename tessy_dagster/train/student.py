"""Full-parameter SFT of the student on an arm's corpus, with TRL's `SFTTrainer`.

The records are encoded by `encode_chat` (the student's own thinking prompt, then the assistant turn and the
template's end of turn) into a pre-tokenized dataset of `input_ids` and `completion_mask`, so the tokens are
exactly the ones the model sees at generation time and the loss covers the assistant turn only
(`completion_only_loss=True`: TRL turns the mask into labels, -100 on the prompt).

Every epoch's weights are saved (`save_only_model`: no optimizer state) and kept under `out_dir/epochs/epoch-N/`;
the epoch chosen by `report_epoch` is also written at the top of `out_dir`, so `from_pretrained(out_dir)` loads
the reported checkpoint. `training.json` has the per-epoch losses, the rule and the chosen epoch.

With `num_processes` > 1 the training runs under `accelerate launch` (FSDP config) or `torchrun` (DDP) as a child
process group (train/launch.py); rank 0 writes the artifact and the metrics, and its progress lines reach the
caller's `progress`.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

from ..corpus.filters import load_chat_records
from ..settings import SftSettings
from .sft import encode_chats

# What the Trainer writes into a checkpoint beside the model and tokenizer; none of it belongs in the artifact.
TRAINER_FILES = ("training_args.bin", "trainer_state.json", "README.md", "optimizer.pt", "scheduler.pt",
                 "scaler.pt", "rng_state.pth")


def finetune_student(*, student_dir, corpus_path, settings: SftSettings, out_dir, arm: str | None = None,
                     progress: Callable[[str], None] = print) -> dict:
    """Fine-tune the student on the corpus and write the artifact into `out_dir`; return numeric metrics."""
    _read_records(corpus_path)  # a bad corpus fails here, before any process is launched
    if settings.world_size > 1:
        from .launch import launch

        return launch(student_dir=student_dir, corpus_path=corpus_path, settings=settings, out_dir=out_dir,
                       arm=arm, progress=progress)
    return train_student(student_dir=student_dir, corpus_path=corpus_path, settings=settings, out_dir=out_dir,
                         arm=arm, progress=progress)


def _read_records(corpus_path) -> list[tuple[str, str]]:
    import datasets

    datasets.disable_progress_bars()
    unreadable = f"{corpus_path}: cannot read the SFT corpus ({{}}); materialize sft_corpus for this arm again"
    if Path(corpus_path).exists():
        try:
            rows = _parquet_rows(corpus_path)
        except Exception as err:  # not a Parquet file, or a truncated one
            raise ValueError(unreadable.format(f"{type(err).__name__}: {err}")) from err
        if rows == 0:  # `datasets` fails on an empty file with a generic error; say what it is
            raise ValueError(f"{corpus_path}: the corpus is empty, nothing to train on; see sft_corpus' drop counts")
    try:
        records = load_chat_records(corpus_path)  # a missing file, or a row with the wrong roles: its own error
    except (FileNotFoundError, ValueError):
        raise
    except Exception as err:  # e.g. no messages column
        raise ValueError(unreadable.format(f"{type(err).__name__}: {err}")) from err
    if not records:
        raise ValueError(f"{corpus_path}: the corpus is empty, nothing to train on; see sft_corpus' drop counts")
    return records


def _parquet_rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(str(path)).num_rows


def split_records(n: int, validation_share: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices: a seeded shuffle, the validation share (at least one record when > 0)
    taken off the front."""
    order = list(range(n))
    random.Random(f"sft-split:{seed}").shuffle(order)
    n_val = 0 if validation_share <= 0 else max(1, round(n * validation_share))
    if n_val >= n:
        raise ValueError(f"validation_share {validation_share} leaves no training records out of {n}")
    return sorted(order[n_val:]), sorted(order[:n_val])


def choose_epoch(epochs: list[dict], rule: str) -> dict:
    """The epoch to report: the last one, or the one with the lowest validation loss (the earliest on a tie)."""
    if not epochs:
        raise ValueError("no epoch was saved: training stopped before its first step")
    if rule == "last":
        return epochs[-1]
    if rule == "lowest_validation_loss":
        scored = [e for e in epochs if e.get("validation_loss") is not None]
        if not scored:
            raise ValueError("report_epoch 'lowest_validation_loss': no epoch has a validation loss")
        return min(scored, key=lambda e: e["validation_loss"])
    raise ValueError(f"unknown report_epoch rule {rule!r}")


def sft_dataset(examples):
    """TRL's pre-tokenized format: `input_ids` as `encode_chat` wrote them and `completion_mask` (1 on the
    assistant turn), which TRL turns into labels (-100 elsewhere) under `completion_only_loss`."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [ex.input_ids for ex in examples],
                              "completion_mask": [ex.loss_mask for ex in examples]})


def runtime_choices(settings: SftSettings) -> dict:
    """Attention, batching and bf16 as they apply on this machine (the settings' `auto` resolved)."""
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    attn = settings.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    batching = settings.batching
    if batching == "auto":
        batching = "padding_free" if attn.startswith("flash") else "padded"
    bf16 = settings.bf16 if settings.bf16 != "auto" else bool(cuda and torch.cuda.is_bf16_supported())
    return {"attn_implementation": attn, "batching": batching, "bf16": bool(bf16)}


def sft_config(settings: SftSettings, *, output_dir, has_validation: bool, choices: dict):
    """TRL's config for these settings; the world size is the launcher's (1 when run in-process)."""
    import torch
    from trl import SFTConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = settings.per_device_batch_size or settings.batch_size // world
    accumulation = max(1, settings.batch_size // (per_device * world))
    scheduler_kwargs = {"min_lr_rate": settings.min_lr_rate} if settings.lr_scheduler == "cosine_with_min_lr" else {}
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of the total steps
        weight_decay=settings.weight_decay,
        adam_beta2=settings.adam_beta2,
        max_grad_norm=settings.max_grad_norm,
        # records are truncated to max_tokens by encode_chats already; TRL wants no max_length when padding-free
        # without packing (it would not enforce it), and the row length when packed
        max_length=None if choices["batching"] == "padding_free" else settings.max_tokens,
        completion_only_loss=True,  # the dataset's completion_mask: the assistant turn
        packing=choices["batching"] == "packed",
        packing_strategy="bfd",
        padding_free=choices["batching"] in ("padding_free", "packed"),
        gradient_checkpointing=settings.gradient_checkpointing,
        bf16=choices["bf16"],
        seed=settings.seed,
        data_seed=settings.seed,
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch",
        save_only_model=True,  # weights only: no optimizer, scheduler or RNG state in the artifact
        logging_strategy="steps",
        logging_steps=1,  # every step's loss, for the per-epoch means in training.json
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without CUDA: the CPU, and under torchrun accelerate's MULTI_CPU (DDP over gloo)
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # every parameter of a causal LM gets a gradient
    )


def _callbacks(settings: SftSettings, progress: Callable[[str], None], history: dict):
    from transformers import TrainerCallback

    class EpochLog(TrainerCallback):
        """Progress lines, per-step losses, per-epoch validation losses and saves, and the wall-clock cap."""

        def on_train_begin(self, args, state, control, **kwargs):
            history["start"] = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                history["steps"].append({"step": state.global_step, "epoch": state.epoch, "loss": logs["loss"]})
            if "num_tokens" in logs:
                history["tokens"] = int(logs["num_tokens"])
            if "eval_loss" in logs:
                history["evals"][state.global_step] = logs["eval_loss"]
            if "loss" in logs and state.is_world_process_zero and (
                    state.global_step % settings.log_every == 0 or state.global_step == state.max_steps):
                recent = [s["loss"] for s in history["steps"][-settings.log_every:]]
                elapsed = time.monotonic() - history["start"]
                progress(f"step {state.global_step}/{state.max_steps}, epoch {state.epoch:.2f}, "
                         f"loss {sum(recent) / len(recent):.4f}, {history.get('tokens', 0) / elapsed:.0f} tok/s")

        def on_step_end(self, args, state, control, **kwargs):
            over = time.monotonic() - history["start"] > settings.max_seconds
            if _any_rank(over, args.device) and not control.should_training_stop:
                if state.is_world_process_zero:
                    progress(f"{settings.max_seconds:.0f} s wall-clock cap reached at step "
                             f"{state.global_step} (epoch {state.epoch:.2f}): stopping, saving this partial epoch")
                history["capped"] = True
                control.should_training_stop = True  # the epoch ends here: evaluated and saved as every epoch

        def on_save(self, args, state, control, **kwargs):
            if history["saves"] and history["saves"][-1]["step"] == state.global_step:
                return  # the same checkpoint saved again
            history["saves"].append({"step": state.global_step, "epoch": state.epoch})
            if state.is_world_process_zero:
                epoch = state.epoch or 0.0
                whole = abs(epoch - round(epoch)) < 1e-6
                message = (f"epoch {round(epoch)}/{settings.epochs} saved" if whole
                           else f"partial epoch {epoch:.2f} of {settings.epochs} saved")
                if state.global_step in history["evals"]:
                    message += f", validation loss {history['evals'][state.global_step]:.4f}"
                progress(message)

    return [EpochLog()]


def _any_rank(flag: bool, device) -> bool:
    """True when the flag is set on any process, so every rank stops at the same step (a rank that stopped
    alone would leave the others waiting in a collective)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def train_student(*, student_dir, corpus_path, settings: SftSettings, out_dir, arm: str | None = None,
                  progress: Callable[[str], None] = print) -> dict:
    """The training itself, on every process of a launch (or the only one); rank 0 writes the artifact."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import SFTTrainer

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # loading and writing shards
    out_dir = Path(out_dir)
    records = _read_records(corpus_path)
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    examples = encode_chats(tokenizer, records, settings.max_tokens)
    train_idx, val_idx = split_records(len(examples), settings.validation_share, settings.seed)

    choices = runtime_choices(settings)
    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32,
                                                 attn_implementation=choices["attn_implementation"])
    who = "SFT of the student" + (f" on arm {arm}'s corpus" if arm else "")
    trainer_dir = out_dir / ".trainer"
    args = sft_config(settings, output_dir=trainer_dir, has_validation=bool(val_idx), choices=choices)
    history: dict = {"steps": [], "evals": {}, "saves": [], "tokens": 0, "capped": False}
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset([examples[i] for i in train_idx]),
                         eval_dataset=sft_dataset([examples[i] for i in val_idx]) if val_idx else None,
                         processing_class=tokenizer,
                         callbacks=_callbacks(settings, progress, history))
    trainer.remove_callback(PrinterCallback)  # progress goes through `progress`, not printed dicts
    world = trainer.accelerator.num_processes
    if trainer.is_world_process_zero():
        progress(f"{who}: {len(train_idx)} records ({len(val_idx)} held out for validation) for up to "
                 f"{settings.epochs} epochs, batch {settings.batch_size} = {args.per_device_train_batch_size} per "
                 f"device x {args.gradient_accumulation_steps} accumulated x {world} processes, "
                 f"{choices['batching']} batches, {choices['attn_implementation']} attention, "
                 f"bf16 {'on' if choices['bf16'] else 'off'}")
    start = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - start
    if not trainer.is_world_process_zero():
        return {}
    epochs = _collect_epochs(history, trainer_dir, out_dir)
    chosen = choose_epoch(epochs, settings.report_epoch)
    _place(out_dir / "epochs" / chosen["name"], out_dir)
    if not settings.save_every_epoch:
        shutil.rmtree(out_dir / "epochs")
    shutil.rmtree(trainer_dir, ignore_errors=True)
    losses = [s["loss"] for s in history["steps"]]
    tail = losses[-20:] or [float("nan")]
    summary = {
        "rule": settings.report_epoch, "chosen_epoch": chosen["epoch"], "chosen": chosen["name"],
        "epochs": epochs, "capped_by_max_seconds": history["capped"], "processes": world, **choices,
        "distributed_type": str(trainer.accelerator.distributed_type.value), "fsdp": bool(trainer.is_fsdp_enabled),
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "per_device_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2))
    metrics = {
        "records": len(records), "train_records": len(train_idx), "validation_records": len(val_idx),
        "train_steps": trainer.state.global_step, "epochs": round(trainer.state.epoch or 0.0, 3),
        "train_tokens": history["tokens"], "first_loss": round(losses[0], 4) if losses else float("nan"),
        "final_loss": round(sum(tail) / len(tail), 4), "chosen_epoch": chosen["epoch"],
        "saved_epochs": len(epochs),
        "train_seconds": round(seconds, 1), "tokens_per_second": round(history["tokens"] / max(seconds, 1e-9), 1),
        "processes": world,
    }
    if chosen.get("validation_loss") is not None:
        metrics["validation_loss"] = chosen["validation_loss"]
    progress(f"reported epoch {chosen['epoch']} ({settings.report_epoch}); final loss {metrics['final_loss']}")
    return metrics


def _collect_epochs(history: dict, trainer_dir: Path, out_dir: Path) -> list[dict]:
    """Move each Trainer checkpoint to out_dir/epochs/epoch-N (weights, config, tokenizer only) and describe it:
    its epoch, step, mean train loss over its steps and validation loss."""
    epochs, previous = [], 0.0
    for save in history["saves"]:
        epoch = save["epoch"] or 0.0
        whole = abs(epoch - round(epoch)) < 1e-6
        number = round(epoch) if whole else math.ceil(epoch)
        name = f"epoch-{number}" if whole else f"epoch-{number}-partial"
        src = trainer_dir / f"checkpoint-{save['step']}"
        dst = out_dir / "epochs" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        for leftover in TRAINER_FILES:
            (dst / leftover).unlink(missing_ok=True)
        losses = [s["loss"] for s in history["steps"] if previous < (s["epoch"] or 0.0) <= epoch + 1e-9]
        epochs.append({"epoch": round(epoch, 3), "name": name, "step": save["step"], "partial": not whole,
                       "train_loss": round(sum(losses) / len(losses), 4) if losses else None,
                       "validation_loss": _round(history["evals"].get(save["step"]))})
        previous = epoch
    return epochs


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _place(src: Path, out_dir: Path) -> None:
    """The chosen epoch's files at the top of out_dir: hard links where the filesystem allows (no second copy
    of the weights), copies elsewhere."""
    for path in src.iterdir():
        if path.is_file():
            try:
                os.link(path, out_dir / path.name)
            except OSError:
                shutil.copy2(path, out_dir / path.name)
