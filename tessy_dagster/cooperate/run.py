"""Run one arm over the task prompts and write its traces as Parquet, in shards that survive a kill.

Prompts are cut into shards of `shard_size` in prompt-id order. Each finished shard is written under a
temporary name and renamed into place in the step's work folder, so a run killed at any moment and started
again skips the whole shards and redoes only the one in flight: every prompt ends up exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..settings import ALL_ARMS, CooperateSettings
from ..storage import read_table, write_table
from .engine import PLANS, SINGLE_MODEL_PLAN, CooperativeEngine
from .generation import load_generator


def write_traces(*, arm: str, teacher_dir, student_dir, boundary_dir, prompts_path, digests: dict,
                 settings: CooperateSettings, context_tokens: int, out_dir, work_dir,
                 progress: Callable[[str], None] = print) -> dict:
    import torch

    if arm not in ALL_ARMS + tuple(SINGLE_MODEL_PLAN):
        raise ValueError(f"unknown arm {arm!r}; choose one of {ALL_ARMS + tuple(SINGLE_MODEL_PLAN)}")
    cooperative = PLANS[arm][0] == "cooperative"
    if cooperative and not boundary_dir:
        raise ValueError(f"the {arm} arm needs a boundary model (boundary_dir)")
    prompts = sorted((r["problem_id"], r["prompt"]) for r in read_table(prompts_path).to_pylist())
    if not prompts:
        raise ValueError(f"{prompts_path}: no prompts")
    shards = [prompts[i:i + settings.shard_size] for i in range(0, len(prompts), settings.shard_size)]
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(shards)) if not _shard_path(work_dir, i).exists()]
    if len(todo) < len(shards):
        progress(f"resuming: {len(shards) - len(todo)} of {len(shards)} shards were written by an earlier run")
    if todo:
        engine = _engine(arm, cooperative, teacher_dir, student_dir, boundary_dir, digests, settings,
                         context_tokens, progress)
        for i in todo:
            # A shard's sampling does not depend on which shards ran before it; its rows record the seed used.
            torch.manual_seed(settings.seed + i)
            engine.provenance["seed"] = settings.seed + i
            rows = engine.run(arm, shards[i])
            _write_shard(rows, work_dir, i)
            progress(f"shard {i + 1}/{len(shards)} written ({len(rows)} traces)")
    rows = [r for i in range(len(shards)) for r in read_table(_shard_path(work_dir, i)).to_pylist()]
    ids = [r["prompt_id"] for r in rows]
    if sorted(ids) != [pid for pid, _ in prompts]:
        raise RuntimeError(f"{work_dir}: the shards do not hold every prompt exactly once; delete the folder "
                           f"and run again")
    write_table(pa.Table.from_pylist(rows, schema=schemas.TRACES), Path(out_dir) / "traces.parquet", schemas.TRACES)
    return trace_metrics(rows)


def _engine(arm, cooperative, teacher_dir, student_dir, boundary_dir, digests, settings, context_tokens,
            progress) -> CooperativeEngine:
    # each model's end-of-thinking marker comes from its own chat template (LocalTokenizer.format)
    models = {role: load_generator(folder, settings.generation, role=role)
              for role, folder in (("teacher", teacher_dir), ("student", student_dir))}
    boundary = None
    if cooperative:
        from ..boundary.model import BoundaryPredictor

        boundary = BoundaryPredictor(boundary_dir, context_tokens=context_tokens, batch_size=settings.batch_size)
    provenance = {
        "seed": settings.seed, "sampling": json.dumps(settings.sampling.model_dump(), sort_keys=True),
        "teacher_digest": digests.get("teacher_model", ""), "student_digest": digests.get("student_model", ""),
        "boundary_digest": digests.get("boundary_model", "") if cooperative else "",
    }
    return CooperativeEngine(models, boundary, settings, provenance, progress)


def _shard_path(work_dir: Path, index: int) -> Path:
    return work_dir / f"shard-{index:05d}.parquet"


def _write_shard(rows: list[dict], work_dir: Path, index: int) -> None:
    rows.sort(key=lambda r: r["prompt_id"])
    final = _shard_path(work_dir, index)
    partial = final.with_name(final.name + ".partial")
    write_table(pa.Table.from_pylist(rows, schema=schemas.TRACES), partial, schemas.TRACES)
    os.replace(partial, final)  # atomic: a shard is either whole or absent


def trace_metrics(rows: list[dict]) -> dict:
    n = len(rows)
    total = sum(r["n_tokens_total"] for r in rows)
    metrics = {
        "traces": n,
        "mean_tokens": total / n if n else 0.0,
        "teacher_token_share": sum(r["n_tokens_teacher"] for r in rows) / total if total else 0.0,
        "mean_switches": sum(r["n_switches"] for r in rows) / n if n else 0.0,
        "rollback_tokens": sum(r["rollback_tokens"] for r in rows),
        "answers_truncated": sum(r["answer_finish_reason"] == "length" for r in rows),
    }
    for reason in sorted({r["ended"] for r in rows}):
        metrics[f"ended_{reason}"] = sum(r["ended"] == reason for r in rows)
    return metrics
