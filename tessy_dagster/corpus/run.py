"""Build one arm's SFT corpus: filters, the per-trace drift metrics, and the drift gate's verdict.

The heavy step `sft_corpus` calls `write_corpus`: the filters keep or drop every trace (filters.py), the
student and the boundary model measure the kept ones (drift_metrics.py, calibrated on the student's own
traces from `student_responses`), and the Great Expectations suite (drift_check.py) judges them. The verdict
and the calibration it was judged against are saved in the artifact (`drift_report.json`), so training
can refuse a failing corpus later without running anything again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..settings import CorpusFilters, StyleLexicons
from ..storage import read_table
from .drift_check import DriftThresholds, validate_style_drift, verdict_json
from .filters import DRIFT_FILE, build_sft_corpus

DRIFT_REPORT = "drift_report.json"
CORPUS_FILE = "corpus.parquet"


def write_corpus(*, traces_path, student_dir, boundary_dir, student_responses_dir, prompts_path, benchmark_path,
                 out_dir, max_student_tokens: int, filters: CorpusFilters, thresholds: DriftThresholds,
                 verified: bool = False, lexicons: StyleLexicons | None = None, context_tokens: int = 200,
                 classifier_max_tokens: int = 512, batch_size: int = 16,
                 progress: Callable[[str], None] = print) -> dict:
    """Write corpus.parquet, dropped.parquet, drift_metrics.parquet and drift_report.json into `out_dir`;
    return the counts, the metrics' means and whether the drift suite passed."""
    from .drift_metrics import corpus_drift

    calibration: dict = {}

    def drift(rows: list[dict]) -> list[dict]:
        progress(f"drift metrics: the student's NLL, similarity and style rates of {len(rows)} kept traces, "
                 f"calibrated on the student's own traces")
        metrics, calibration["value"] = corpus_drift(
            rows, student_dir=student_dir, boundary_dir=boundary_dir, student_responses_dir=student_responses_dir,
            context_tokens=context_tokens, classifier_max_tokens=classifier_max_tokens, batch_size=batch_size,
            progress=progress)
        return metrics

    out_dir = Path(out_dir)
    stats = build_sft_corpus(traces_path, out_dir / CORPUS_FILE, max_student_tokens, student=student_dir,
                             lexicons=lexicons, filters=filters, benchmark_path=benchmark_path,
                             prompts_path=prompts_path, verified=verified, drift=drift)
    progress(f"kept {stats['records']} of {stats['traces']} traces; running the style-drift suite")
    frame = read_table(out_dir / DRIFT_FILE).to_pandas()
    report = validate_style_drift(frame, thresholds, calibration.get("value"))
    (out_dir / DRIFT_REPORT).write_text(json.dumps(verdict_json(report, thresholds), indent=2))
    failed = [o.name for o in report.failed()]
    progress(f"style-drift suite {'passed' if report.success else 'FAILED: ' + ', '.join(failed)}")
    return {**stats, "drift_suite_passed": int(report.success)}
