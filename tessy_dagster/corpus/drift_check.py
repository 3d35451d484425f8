"""Blocking style-drift gate for a supervised-fine-tuning corpus.

Each row of the input DataFrame is one trace of the corpus, carrying per-trace
style-drift metrics:

* ``teacher_token_share``: share of the trace's tokens written by the teacher
  model (0..1);
* ``teacher_marker_rate``: teacher-lexicon style markers per 100 words;
* ``student_marker_rate``: student-lexicon style markers per 100 words.

:func:`validate_style_drift` runs a Great Expectations (1.x) suite over these
metrics (through :mod:`tessy_dagster.gx_suite`, which imports GX lazily) and
returns a :class:`DriftReport`; ``report.success`` says whether the corpus may
reach training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..gx_suite import ExpectationOutcome, Planned, expect, run_suite

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

__all__ = ["DriftReport", "DriftThresholds", "ExpectationOutcome", "validate_style_drift"]

TEACHER_TOKEN_SHARE = "teacher_token_share"
TEACHER_MARKER_RATE = "teacher_marker_rate"
STUDENT_MARKER_RATE = "student_marker_rate"
REQUIRED_COLUMNS: tuple[str, ...] = (
    TEACHER_TOKEN_SHARE,
    TEACHER_MARKER_RATE,
    STUDENT_MARKER_RATE,
)


@dataclass(frozen=True)
class DriftThresholds:
    """Limits for the gate. A threshold set to ``None`` drops its expectation."""

    max_mean_teacher_token_share: float | None = 0.95
    max_mean_teacher_marker_rate: float | None = 1.0
    # Every row's teacher_marker_rate must be at or below this.
    max_row_teacher_marker_rate: float | None = 5.0
    min_rows: int = 1
    # The lexicon marker rates exist only where a lexicon is configured (the toy world's, or a team's).
    markers: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return REQUIRED_COLUMNS if self.markers else (TEACHER_TOKEN_SHARE,)


@dataclass(frozen=True)
class DriftReport:
    success: bool
    outcomes: list[ExpectationOutcome]
    n_rows: int

    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def _plan(thresholds: DriftThresholds) -> list[Planned]:
    planned = [expect("row_count", "ExpectTableRowCountToBeBetween", thresholds.min_rows,
                      min_value=int(thresholds.min_rows))]
    planned += [expect(f"no_nulls_{column}", "ExpectColumnValuesToNotBeNull", column=column)
                for column in thresholds.columns]
    planned.append(expect("teacher_token_share_in_unit_interval", "ExpectColumnValuesToBeBetween",
                          column=TEACHER_TOKEN_SHARE, min_value=0.0, max_value=1.0))
    # Thresholded expectations: (name, kind, column, limit); a None limit drops it.
    optional = [("mean_teacher_token_share", "ExpectColumnMeanToBeBetween", TEACHER_TOKEN_SHARE,
                 thresholds.max_mean_teacher_token_share)]
    if thresholds.markers:
        planned += [expect(f"{column}_nonnegative", "ExpectColumnValuesToBeBetween", 0.0, column=column,
                           min_value=0.0)
                    for column in (TEACHER_MARKER_RATE, STUDENT_MARKER_RATE)]
        optional += [
            ("mean_teacher_marker_rate", "ExpectColumnMeanToBeBetween", TEACHER_MARKER_RATE,
             thresholds.max_mean_teacher_marker_rate),
            ("row_teacher_marker_rate", "ExpectColumnValuesToBeBetween", TEACHER_MARKER_RATE,
             thresholds.max_row_teacher_marker_rate),
        ]
    planned += [expect(name, kind, limit, column=column, max_value=float(limit))
                for name, kind, column, limit in optional if limit is not None]
    return planned


def validate_style_drift(metrics: "pandas.DataFrame", thresholds: DriftThresholds) -> DriftReport:
    """Run the style-drift suite over ``metrics`` (one row per trace).

    Raises ``ValueError`` if a required column is missing. An empty DataFrame
    yields a failed report (``row_count`` fails), not an exception.
    """
    missing = [c for c in thresholds.columns if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"style-drift metrics are missing required column(s): {', '.join(missing)}"
        )
    success, outcomes = run_suite(metrics.loc[:, list(thresholds.columns)], _plan(thresholds), "style_drift")
    return DriftReport(success=success, outcomes=outcomes, n_rows=int(len(metrics)))
