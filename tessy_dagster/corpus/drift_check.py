"""Blocking style-drift gate for a supervised-fine-tuning corpus.

Each row of the input DataFrame is one trace of the corpus with its per-trace drift metrics
(`tessy_dagster.corpus.drift_metrics`): the student's own NLL per span kind and author, the TF-IDF similarity
to the student's own response to the same prompt, the boundary model's style-token rate per author and the
teacher token share; where a lexicon is configured, also the lexicon marker rates per 100 words
(`teacher_marker_rate`, `student_marker_rate`).

The model-based thresholds are calibrated, not guessed: they are relative to the same metrics on the
student's own traces (`drift_metrics.calibrate`), passed as `calibration`, and the threshold each
expectation checked is reported with its outcome. The expectations (a `None` threshold drops one):

- structure: `row_count`, `no_nulls_<column>` for values every trace has, values in range
  (shares and rates in [0, 1], NLLs non-negative);
- `mean_style_nll_excess`: the mean style-token NLL under the student is at most the student's own
  mean plus `max_style_nll_excess` nats. Style tokens carry no capability, so a corpus whose style tokens
  the student finds much less likely than its own is teaching it someone else's voice: TESSY's failure mode;
- `row_style_nll_outliers`: at most `max_style_nll_outlier_share` of the traces have a style NLL above the
  student's own 95th percentile plus `max_style_nll_excess` (a few teacher-styled traces hidden in a corpus
  whose mean still passes);
- `mean_similarity_ratio`: the mean TF-IDF cosine to the student's own response is at least
  `min_similarity_ratio` times the student's self-similarity (two of its own samples for a prompt);
- `mean_teacher_style_rate`: the mean share of teacher-written tokens that B_T labels style is at most
  `max_mean_teacher_style_rate` (the teacher should hand over capability, not its discourse);
- `mean_teacher_token_share` (as before) and, with a lexicon, the marker-rate expectations.

`validate_style_drift` runs the suite through `tessy_dagster.gx_suite` (GX imported lazily) and returns a
`DriftReport`; `report.success` says whether the corpus may reach training; `verdict_json` serialises the
verdict together with the calibration it was judged against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..gx_suite import ExpectationOutcome, Planned, expect, run_suite

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

    from ..settings import DriftSettings

__all__ = ["DriftReport", "DriftThresholds", "ExpectationOutcome", "validate_style_drift", "verdict_json"]

TEACHER_TOKEN_SHARE = "teacher_token_share"
TEACHER_MARKER_RATE = "teacher_marker_rate"
STUDENT_MARKER_RATE = "student_marker_rate"
NLL_STYLE = "nll_style"
NLL_THINKING = "nll_thinking"
SIMILARITY = "similarity"
STYLE_RATE = "style_rate"
STYLE_RATE_TEACHER = "style_rate_teacher"
MARKER_COLUMNS = (TEACHER_MARKER_RATE, STUDENT_MARKER_RATE)
# Kept for callers of the lexicon-only gate.
REQUIRED_COLUMNS: tuple[str, ...] = (TEACHER_TOKEN_SHARE,) + MARKER_COLUMNS


@dataclass(frozen=True)
class DriftThresholds:
    """Limits for the gate. A threshold set to ``None`` drops its expectation.

    The model-based limits (all off by default here; `DriftSettings` holds the defaults per arm) are
    relative to the calibration passed to `validate_style_drift`."""

    max_mean_teacher_token_share: float | None = 0.95
    max_mean_teacher_marker_rate: float | None = 1.0
    # Every row's teacher_marker_rate must be at or below this.
    max_row_teacher_marker_rate: float | None = 5.0
    min_rows: int = 1
    # The lexicon marker rates exist only where a lexicon is configured (the toy world's, or a team's).
    markers: bool = True
    # --- model-based, calibrated on the student's own traces --------------------------------------------
    max_style_nll_excess: float | None = None  # nats over the student's own mean style-token NLL
    max_style_nll_outlier_share: float | None = None  # share of rows over the student's own q95 style NLL
    min_similarity_ratio: float | None = None  # times the student's self-similarity
    max_mean_teacher_style_rate: float | None = None  # absolute: teacher tokens B_T labels style
    # The model-based metrics were computed (the NLL, similarity and style-rate columns exist).
    model_metrics: bool = False

    @property
    def calibrated(self) -> bool:
        return any(v is not None for v in (self.max_style_nll_excess, self.max_style_nll_outlier_share,
                                           self.min_similarity_ratio))

    @property
    def columns(self) -> tuple[str, ...]:
        out = [TEACHER_TOKEN_SHARE]
        if self.model_metrics:
            out += [NLL_THINKING, NLL_STYLE, STYLE_RATE, STYLE_RATE_TEACHER]
            if self.min_similarity_ratio is not None:
                out.append(SIMILARITY)
        if self.markers:
            out += list(MARKER_COLUMNS)
        return tuple(out)

    @classmethod
    def for_arm(cls, drift: "DriftSettings", arm: str, *, markers: bool,
                max_mean_teacher_token_share: float | None = None,
                max_mean_teacher_marker_rate: float | None = None,
                max_row_teacher_marker_rate: float | None = None) -> "DriftThresholds":
        """One arm's thresholds from the settings: the model-based ones from `drift`, the lexicon and share
        limits as the corpus settings give them for the arm."""
        return cls(max_mean_teacher_token_share=max_mean_teacher_token_share,
                   max_mean_teacher_marker_rate=max_mean_teacher_marker_rate,
                   max_row_teacher_marker_rate=max_row_teacher_marker_rate,
                   min_rows=drift.min_rows, markers=markers, model_metrics=True,
                   max_style_nll_excess=drift.max_style_nll_excess.get(arm),
                   max_style_nll_outlier_share=drift.max_style_nll_outlier_share.get(arm),
                   min_similarity_ratio=drift.min_similarity_ratio.get(arm),
                   max_mean_teacher_style_rate=drift.max_mean_teacher_style_rate.get(arm))


@dataclass(frozen=True)
class DriftReport:
    success: bool
    outcomes: list[ExpectationOutcome]
    n_rows: int
    calibration: dict | None = None

    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def _calibrated(calibration: dict | None, column: str, stat: str, needed_by: str) -> float:
    value = ((calibration or {}).get("columns", {}).get(column) or {}).get(stat)
    if value is None:
        raise ValueError(f"the drift calibration has no {stat} of {column!r} (needed by {needed_by}); "
                         f"calibrate on the student's own traces (drift_metrics.calibrate) with that metric present")
    return float(value)


def _plan(thresholds: DriftThresholds, calibration: dict | None) -> list[Planned]:
    t = thresholds
    planned = [expect("row_count", "ExpectTableRowCountToBeBetween", t.min_rows, min_value=int(t.min_rows))]
    must_exist = [TEACHER_TOKEN_SHARE] + ([NLL_THINKING, STYLE_RATE] if t.model_metrics else [])
    if t.model_metrics and t.min_similarity_ratio is not None:
        must_exist.append(SIMILARITY)  # every prompt has the student's own response
    if t.markers:
        must_exist += list(MARKER_COLUMNS)
    planned += [expect(f"no_nulls_{column}", "ExpectColumnValuesToNotBeNull", column=column) for column in must_exist]
    unit = [TEACHER_TOKEN_SHARE] + ([STYLE_RATE, STYLE_RATE_TEACHER] if t.model_metrics else [])
    if t.model_metrics and t.min_similarity_ratio is not None:
        unit.append(SIMILARITY)
    planned += [expect(f"{column}_in_unit_interval", "ExpectColumnValuesToBeBetween", column=column,
                       min_value=0.0, max_value=1.0) for column in unit]
    if t.model_metrics:
        planned += [expect(f"{column}_nonnegative", "ExpectColumnValuesToBeBetween", 0.0, column=column,
                           min_value=0.0) for column in (NLL_THINKING, NLL_STYLE)]
    if t.markers:
        planned += [expect(f"{column}_nonnegative", "ExpectColumnValuesToBeBetween", 0.0, column=column,
                           min_value=0.0) for column in MARKER_COLUMNS]
    # Thresholded expectations.
    if t.max_mean_teacher_token_share is not None:
        planned.append(expect("mean_teacher_token_share", "ExpectColumnMeanToBeBetween",
                              t.max_mean_teacher_token_share, column=TEACHER_TOKEN_SHARE,
                              max_value=float(t.max_mean_teacher_token_share)))
    if t.model_metrics:
        if t.max_style_nll_excess is not None:
            limit = _calibrated(calibration, NLL_STYLE, "mean", "max_style_nll_excess") + t.max_style_nll_excess
            planned.append(expect("mean_style_nll_excess", "ExpectColumnMeanToBeBetween", limit, column=NLL_STYLE,
                                  max_value=limit))
        if t.max_style_nll_outlier_share is not None:
            # the student's own 95th percentile, plus the same tolerance as the mean's: robust to a small
            # calibration sample, whose 95th percentile is close to its maximum
            limit = _calibrated(calibration, NLL_STYLE, "q95", "max_style_nll_outlier_share") + \
                (t.max_style_nll_excess or 0.0)
            planned.append(expect("row_style_nll_outliers", "ExpectColumnValuesToBeBetween", limit, column=NLL_STYLE,
                                  max_value=limit, mostly=max(0.0, 1.0 - t.max_style_nll_outlier_share)))
        if t.min_similarity_ratio is not None:
            limit = _calibrated(calibration, SIMILARITY, "mean", "min_similarity_ratio") * t.min_similarity_ratio
            planned.append(expect("mean_similarity_ratio", "ExpectColumnMeanToBeBetween", limit, column=SIMILARITY,
                                  min_value=limit))
        if t.max_mean_teacher_style_rate is not None:
            # rows without teacher tokens have no rate; GX's mean is over the rows that have one
            planned.append(expect("mean_teacher_style_rate", "ExpectColumnMeanToBeBetween",
                                  t.max_mean_teacher_style_rate, column=STYLE_RATE_TEACHER,
                                  max_value=float(t.max_mean_teacher_style_rate)))
    if t.markers:
        if t.max_mean_teacher_marker_rate is not None:
            planned.append(expect("mean_teacher_marker_rate", "ExpectColumnMeanToBeBetween",
                                  t.max_mean_teacher_marker_rate, column=TEACHER_MARKER_RATE,
                                  max_value=float(t.max_mean_teacher_marker_rate)))
        if t.max_row_teacher_marker_rate is not None:
            planned.append(expect("row_teacher_marker_rate", "ExpectColumnValuesToBeBetween",
                                  t.max_row_teacher_marker_rate, column=TEACHER_MARKER_RATE,
                                  max_value=float(t.max_row_teacher_marker_rate)))
    return planned


def validate_style_drift(metrics: "pandas.DataFrame", thresholds: DriftThresholds,
                         calibration: dict | None = None) -> DriftReport:
    """Run the style-drift suite over ``metrics`` (one row per trace), the calibrated expectations against
    ``calibration`` (`drift_metrics.calibrate` of the student's own traces).

    Raises ``ValueError`` if a required column is missing, or a calibrated expectation is on and the
    calibration lacks its value. An empty DataFrame yields a failed report (``row_count`` fails).
    """
    missing = [c for c in thresholds.columns if c not in metrics.columns]
    if missing:
        raise ValueError(f"style-drift metrics are missing required column(s): {', '.join(missing)}")
    plan = _plan(thresholds, calibration)
    frame = metrics.loc[:, list(thresholds.columns)].astype(float)  # None -> NaN: GX counts them as nulls
    if STYLE_RATE_TEACHER in frame.columns and len(frame) and frame[STYLE_RATE_TEACHER].isna().all():
        # no trace has a teacher token (the student's own traces): no teacher style either, not a null mean
        frame[STYLE_RATE_TEACHER] = 0.0
    success, outcomes = run_suite(frame, plan, "style_drift")
    return DriftReport(success=success, outcomes=outcomes, n_rows=int(len(metrics)), calibration=calibration)


def verdict_json(report: DriftReport, thresholds: DriftThresholds | None = None) -> dict:
    """The verdict (success, n_rows, outcomes with name/success/observed/threshold), the calibration it was
    judged against and the thresholds: what `drift_report.json` holds."""
    out = {"success": report.success, "n_rows": report.n_rows,
           "outcomes": [dataclasses.asdict(o) for o in report.outcomes],
           "calibration": report.calibration}
    if thresholds is not None:
        out["thresholds"] = dataclasses.asdict(thresholds)
    return out
