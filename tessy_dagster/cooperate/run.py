"""Run one arm over the task prompts and write its traces as Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..boundary.model import BoundaryPredictor
from ..settings import ARMS, CooperateSettings
from ..storage import read_table, write_table
from .engine import CooperativeEngine
from .generation import load_generator


def write_traces(*, arm: str, teacher_dir, student_dir, boundary_dir, prompts_path, digests: dict,
                 settings: CooperateSettings, context_tokens: int, out_dir, backend: str = "hf",
                 progress: Callable[[str], None] = print) -> dict:
    import torch

    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {ARMS}")
    prompts = [(r["problem_id"], r["prompt"]) for r in read_table(prompts_path).to_pylist()]
    if not prompts:
        raise ValueError(f"{prompts_path}: no prompts")
    torch.manual_seed(settings.seed)
    models = {"teacher": load_generator(backend, teacher_dir, settings.batch_size),
              "student": load_generator(backend, student_dir, settings.batch_size)}
    boundary = None
    if arm == "tessy":
        if not boundary_dir:
            raise ValueError("the tessy arm needs a boundary model (boundary_dir)")
        boundary = BoundaryPredictor(boundary_dir, context_tokens=context_tokens, batch_size=settings.batch_size)
    provenance = {
        "seed": settings.seed, "sampling": json.dumps(settings.sampling.model_dump(), sort_keys=True),
        "teacher_digest": digests.get("teacher_model", ""), "student_digest": digests.get("student_model", ""),
        "boundary_digest": digests.get("boundary_model", "") if arm == "tessy" else "",
    }
    engine = CooperativeEngine(models, boundary, settings, provenance, progress)
    rows = engine.run_tessy(prompts) if arm == "tessy" else engine.run_teacher_only(prompts)
    rows.sort(key=lambda r: r["prompt_id"])
    write_table(pa.Table.from_pylist(rows, schema=schemas.TRACES), Path(out_dir) / "traces.parquet", schemas.TRACES)
    return trace_metrics(rows)


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
