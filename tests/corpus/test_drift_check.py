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
