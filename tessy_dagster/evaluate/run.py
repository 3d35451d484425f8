"""Score one model on the benchmark and write per-problem results plus a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..cooperate.generation import load_generator
from ..settings import EvalSettings, GenerationSettings
from ..storage import read_table, write_table
from .scoring import problems_from_table, score_generator


def score_model(*, model_dir, benchmark_path, settings: EvalSettings, out_dir, backend: str = "hf",
                progress: Callable[[str], None] = print) -> dict:
    problems = problems_from_table(read_table(benchmark_path))
    if not problems:
        raise ValueError(f"{benchmark_path}: the benchmark has no problems")
    generator = load_generator(model_dir, GenerationSettings(backend=backend, batch_size=settings.batch_size))
    rows, summary = score_generator(generator, problems, settings, progress)
    write_table(pa.Table.from_pylist(rows, schema=schemas.SCORES), Path(out_dir) / "scores.parquet", schemas.SCORES)
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
