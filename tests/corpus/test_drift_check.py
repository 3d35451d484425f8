"""Tests for the style-drift gate, run against the real Great Expectations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tessy_dagster.corpus.drift_check import (
    DriftReport,
    DriftThresholds,
    ExpectationOutcome,
    validate_style_drift,
)

STRUCTURAL = {
    "row_count",
    "no_nulls_teacher_token_share",
    "no_nulls_teacher_marker_rate",
    "no_nulls_student_marker_rate",
    "teacher_token_share_in_unit_interval",
    "teacher_marker_rate_nonnegative",
    "student_marker_rate_nonnegative",
}
THRESHOLDED = {"mean_teacher_token_share", "mean_teacher_marker_rate", "row_teacher_marker_rate"}


def corpus(share=(0.4, 0.5, 0.6), teacher=(0.2, 0.3, 0.4), student=(1.0, 1.5, 2.0)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "teacher_token_share": list(share),
            "teacher_marker_rate": list(teacher),
            "student_marker_rate": list(student),
        },
        dtype=float,
    )


def check(df: pd.DataFrame, thresholds: DriftThresholds | None = None) -> tuple[DriftReport, dict[str, ExpectationOutcome]]:
    report = validate_style_drift(df, thresholds or DriftThresholds())
    outcomes = {o.name: o for o in report.outcomes}
    assert len(outcomes) == len(report.outcomes), "outcome names must be unique"
    assert report.success == all(o.success for o in report.outcomes)
    assert {o.name for o in report.failed()} == {n for n, o in outcomes.items() if not o.success}
    return report, outcomes


def failed_names(report: DriftReport) -> set[str]:
    return {o.name for o in report.failed()}


def test_clean_corpus_passes_and_observed_are_plain_floats():
    report, outcomes = check(corpus())
    assert report.success
    assert report.failed() == []
    assert report.n_rows == 3
    assert set(outcomes) == STRUCTURAL | THRESHOLDED
    for o in report.outcomes:
        assert type(o.observed) is float, (o.name, type(o.observed))
        assert o.threshold is None or type(o.threshold) is float
    assert outcomes["row_count"].observed == 3.0
    assert outcomes["mean_teacher_token_share"].observed == pytest.approx(0.5)
    assert outcomes["mean_teacher_token_share"].threshold == 0.95
    assert outcomes["row_teacher_marker_rate"].observed == 0.0  # unexpected count


def test_high_mean_teacher_token_share_fails():
    report, outcomes = check(corpus(share=(0.9, 0.97, 1.0)))
    assert not report.success
    assert failed_names(report) == {"mean_teacher_token_share"}
    outcome = outcomes["mean_teacher_token_share"]
    assert type(outcome.observed) is float
    assert outcome.observed == pytest.approx((0.9 + 0.97 + 1.0) / 3)
    assert outcome.threshold == 0.95


def test_high_teacher_marker_rates_fail():
    report, outcomes = check(corpus(teacher=(2.0, 3.0, 4.0)))
    assert not report.success
    assert failed_names(report) == {"mean_teacher_marker_rate"}
    assert outcomes["mean_teacher_marker_rate"].observed == pytest.approx(3.0)


def test_single_row_above_per_row_limit_fails():
    # The mean stays below its limit; only the per-row expectation catches it.
    df = corpus(share=[0.5] * 10, teacher=[0.1] * 9 + [6.0], student=[1.0] * 10)
    report, outcomes = check(df)
    assert not report.success
    assert failed_names(report) == {"row_teacher_marker_rate"}
    assert outcomes["row_teacher_marker_rate"].observed == 1.0
    assert outcomes["row_teacher_marker_rate"].threshold == 5.0


def test_none_thresholds_skip_expectations_but_structure_still_checked():
    off = DriftThresholds(
        max_mean_teacher_token_share=None,
        max_mean_teacher_marker_rate=None,
        max_row_teacher_marker_rate=None,
    )
    # Would fail every thresholded expectation, but those are switched off.
    report, outcomes = check(corpus(share=(0.99, 1.0, 1.0), teacher=(9.0, 9.0, 9.0)), off)
    assert report.success
    assert set(outcomes) == STRUCTURAL
    assert not THRESHOLDED & set(outcomes)
    # Structural expectations still run and still fail.
    report, _ = check(corpus(share=(0.5, 1.5, 0.5), student=(1.0, -1.0, None)), off)
    assert not report.success
    assert failed_names(report) == {
        "teacher_token_share_in_unit_interval",
        "student_marker_rate_nonnegative",
        "no_nulls_student_marker_rate",
    }


@pytest.mark.parametrize("bad_share", [1.2, -0.1])
def test_share_outside_unit_interval_fails(bad_share):
    report, outcomes = check(corpus(share=(0.5, bad_share, 0.5)))
    assert not report.success
    assert "teacher_token_share_in_unit_interval" in failed_names(report)
    assert outcomes["teacher_token_share_in_unit_interval"].observed == 1.0


def test_null_fails():
    report, outcomes = check(corpus(teacher=(0.2, float("nan"), 0.4)))
    assert not report.success
    assert failed_names(report) == {"no_nulls_teacher_marker_rate"}
    assert outcomes["no_nulls_teacher_marker_rate"].observed == 1.0


def test_empty_dataframe_fails_on_row_count():
    report, outcomes = check(corpus(share=(), teacher=(), student=()))
    assert not report.success
    assert report.n_rows == 0
    assert "row_count" in failed_names(report)
    assert outcomes["row_count"].observed == 0.0
    assert outcomes["row_count"].threshold == 1.0
    for o in report.outcomes:
        assert o.observed is None or (type(o.observed) is float and not math.isnan(o.observed))


def test_min_rows_threshold():
    report, outcomes = check(corpus(), DriftThresholds(min_rows=5))
    assert failed_names(report) == {"row_count"}
    assert outcomes["row_count"].threshold == 5.0


def test_missing_column_raises_value_error_naming_it():
    df = corpus().drop(columns=["teacher_marker_rate", "student_marker_rate"])
    with pytest.raises(ValueError, match="teacher_marker_rate") as excinfo:
        validate_style_drift(df, DriftThresholds())
    assert "student_marker_rate" in str(excinfo.value)
    assert "teacher_token_share" not in str(excinfo.value)


def test_extra_columns_are_ignored():
    df = corpus().assign(trace_id=["a", "b", "c"])
    report, _ = check(df)
    assert report.success


# --- the model-based, calibrated suite ------------------------------------------------------------------

CALIBRATION = {"version": 1, "n_traces": 3, "columns": {
    "nll_style": {"n": 3, "mean": 0.4, "std": 0.05, "q05": 0.33, "q50": 0.4, "q95": 0.48},
    "similarity": {"n": 3, "mean": 0.9, "std": 0.05, "q05": 0.85, "q50": 0.9, "q95": 0.95},
}}
GATED = DriftThresholds(markers=False, model_metrics=True, max_style_nll_excess=0.5, max_style_nll_outlier_share=0.25,
                        min_similarity_ratio=0.9, max_mean_teacher_style_rate=0.15)
MODEL_BASED = {"mean_style_nll_excess", "row_style_nll_outliers", "mean_similarity_ratio", "mean_teacher_style_rate"}


def model_corpus(nll_style=(0.4, 0.42, 0.38, 0.45), similarity=(0.9, 0.88, 0.92, 0.85),
                 teacher_rate=(0.05, None, 0.1, 0.0), share=(0.7, 0.0, 0.8, 0.6)) -> pd.DataFrame:
    n = len(nll_style)
    return pd.DataFrame({"teacher_token_share": list(share), "nll_thinking": [0.8] * n, "nll_style": list(nll_style),
                         "style_rate": [0.3] * n, "style_rate_teacher": list(teacher_rate),
                         "similarity": list(similarity)})


def test_a_corpus_like_the_students_own_passes_the_calibrated_suite():
    report = validate_style_drift(model_corpus(), GATED, CALIBRATION)
    assert report.success, report.failed()
    outcomes = {o.name: o for o in report.outcomes}
    assert MODEL_BASED <= set(outcomes)
    assert outcomes["mean_style_nll_excess"].threshold == pytest.approx(0.4 + 0.5)
    assert outcomes["row_style_nll_outliers"].threshold == pytest.approx(0.48 + 0.5)
    assert outcomes["mean_similarity_ratio"].threshold == pytest.approx(0.9 * 0.9)
    assert outcomes["mean_teacher_style_rate"].observed == pytest.approx(0.05)  # over the rows with a rate
    assert "no_nulls_similarity" in outcomes and "no_nulls_nll_style" not in outcomes  # no style token: no mean
    assert report.calibration == CALIBRATION


def test_each_calibrated_expectation_blocks_its_drift():
    def failed(**changes):
        return failed_names(validate_style_drift(model_corpus(**changes), GATED, CALIBRATION))

    assert failed(nll_style=(1.5, 1.6, 1.4, 0.4)) == {"mean_style_nll_excess", "row_style_nll_outliers"}
    # the mean stays under its limit, but half the traces are far above the student's own 95th percentile
    assert failed(nll_style=(1.2, 1.2, 0.0, 0.0)) == {"row_style_nll_outliers"}
    assert failed(similarity=(0.5, 0.6, 0.7, 0.6)) == {"mean_similarity_ratio"}
    assert failed(teacher_rate=(0.3, None, 0.4, 0.2)) == {"mean_teacher_style_rate"}
    assert failed(similarity=(0.9, None, 0.9, 0.9)) == {"no_nulls_similarity"}


def test_no_teacher_tokens_anywhere_is_no_teacher_style():
    report = validate_style_drift(model_corpus(teacher_rate=(None,) * 4, share=(0.0,) * 4), GATED, CALIBRATION)
    assert report.success, report.failed()


def test_a_calibrated_expectation_without_its_calibration_raises_naming_it():
    with pytest.raises(ValueError, match="similarity"):
        validate_style_drift(model_corpus(), GATED, {"columns": {"nll_style": CALIBRATION["columns"]["nll_style"]}})
    with pytest.raises(ValueError, match="nll_style"):
        validate_style_drift(model_corpus(), GATED, None)


def test_thresholds_per_arm_from_the_settings_and_verdict_json():
    import json

    from tessy_dagster.corpus.drift_check import verdict_json
    from tessy_dagster.settings import DriftSettings

    drift = DriftSettings()
    control = DriftThresholds.for_arm(drift, "teacher_only", markers=False)
    assert not control.calibrated and control.max_mean_teacher_style_rate is None
    gated = DriftThresholds.for_arm(drift, "tessy", markers=True, max_mean_teacher_token_share=0.95,
                                   max_mean_teacher_marker_rate=1.0)
    assert gated.calibrated and gated.markers and gated.max_mean_teacher_token_share == 0.95
    frame = model_corpus().assign(teacher_marker_rate=0.0, student_marker_rate=1.0)
    report = validate_style_drift(frame, gated, CALIBRATION)
    assert report.success and {"mean_teacher_marker_rate", "mean_style_nll_excess"} <= {o.name for o in report.outcomes}
    verdict = json.loads(json.dumps(verdict_json(report, gated)))
    assert verdict["success"] and verdict["n_rows"] == 4 and verdict["calibration"] == CALIBRATION
    assert {"name", "success", "observed", "threshold"} == set(verdict["outcomes"][0])
    # the controls' structure still applies: a null NLL fails
    report = validate_style_drift(model_corpus().assign(nll_thinking=[0.8, None, 0.8, 0.8]), control, None)
    assert failed_names(report) == {"no_nulls_nll_thinking"}
