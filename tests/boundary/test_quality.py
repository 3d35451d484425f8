"""Tests for the boundary dataset checks, run against the real Great Expectations."""

from __future__ import annotations

import json

import pytest

from tessy_dagster.boundary.quality import CHECKS, DatasetBounds, check_boundary_dataset

BOUNDS = DatasetBounds(min_style_char_share=0.05, max_style_char_share=0.5, max_rejection_rate=0.3)
TEXT = "Hmm, wait. Step 1 adds 3 to x."  # 30 characters; "Hmm, wait." is 0..10


def window(source="teacher", spans=((0, 10),), text=TEXT) -> dict:
    return {"text": text, "source_model": source, "style_spans": [{"start": s, "end": e} for s, e in spans]}


def good_windows() -> list[dict]:
    # Shares 1/3, 1/3, 0 (no spans is fine), 4/30: mean 0.2.
    return [window("teacher"), window("student"), window("student", spans=()), window("teacher", spans=((0, 4),))]


REJECTED = [{"source_model": "student", "reason": "too_short"}]  # rate 1/5


def failed_checks(verdict: dict) -> set[str]:
    assert set(verdict["checks"]) == set(CHECKS)
    assert verdict["success"] == all(c["passed"] for c in verdict["checks"].values())
    return {name for name, c in verdict["checks"].items() if not c["passed"]}


def outcome(verdict: dict, check: str, name: str) -> dict:
    return next(e for e in verdict["checks"][check]["expectations"] if e["name"] == name)


@pytest.fixture(scope="module")
def good_verdict() -> dict:
    return check_boundary_dataset(good_windows(), REJECTED, BOUNDS)


def test_good_dataset_passes_and_verdict_is_json(good_verdict):
    assert good_verdict["success"]
    assert failed_checks(good_verdict) == set()
    assert (good_verdict["n_windows"], good_verdict["n_rejected"]) == (4, 1)
    assert json.loads(json.dumps(good_verdict)) == good_verdict
    assert outcome(good_verdict, "both_sources_present", "accepted_windows")["observed"] == 4.0
    assert outcome(good_verdict, "style_char_share_in_band", "mean_style_char_share_min")["observed"] == \
        pytest.approx(0.2)
    rate = outcome(good_verdict, "rejection_rate_below_max", "rejection_rate")
    assert (rate["observed"], rate["threshold"]) == (pytest.approx(0.2), 0.3)
    for e in good_verdict["checks"]["spans_well_formed"]["expectations"]:
        assert e["observed"] == 0.0, e  # no offending window


def test_source_with_only_rejected_windows_fails_only_sources_check():
    # Students appear only among the rejected rows, which must not count as present.
    windows = [window("teacher"), window("teacher", spans=())]
    rejected = [{"source_model": "student", "reason": "too_short"}]
    verdict = check_boundary_dataset(windows, rejected, DatasetBounds(0.05, 0.5, max_rejection_rate=0.5))
    assert failed_checks(verdict) == {"both_sources_present"}
    assert outcome(verdict, "both_sources_present", "missing_sources")["observed"] == 1.0


@pytest.mark.parametrize("spans, failed", [
    (((0, 29),), "mean_style_char_share_max"),  # share ~0.97
    ((), "mean_style_char_share_min"),  # share 0
])
def test_style_char_share_outside_band_fails(spans, failed):
    windows = [window(source, spans) for source in ("teacher", "student", "teacher", "student")]
    verdict = check_boundary_dataset(windows, REJECTED, BOUNDS)
    assert failed_checks(verdict) == {"style_char_share_in_band"}
    assert not outcome(verdict, "style_char_share_in_band", failed)["success"]


def test_high_rejection_rate_fails():
    verdict = check_boundary_dataset(good_windows(), REJECTED * 4, BOUNDS)  # 4 of 8
    assert failed_checks(verdict) == {"rejection_rate_below_max"}
    assert outcome(verdict, "rejection_rate_below_max", "rejection_rate")["observed"] == pytest.approx(0.5)


@pytest.mark.parametrize("spans, failed", [
    (((0, 10), (5, 15)), "spans_sorted_without_overlap"),
    (((20, 31),), "span_ends_within_text"),
    (((0, 10), (12, 12)), "spans_non_empty"),
    (((12, 14), (0, 10)), "spans_sorted_without_overlap"),
    (((-1, 4),), "span_starts_nonnegative"),
])
def test_malformed_spans_fail_spans_check(spans, failed):
    verdict = check_boundary_dataset(good_windows() + [window("student", spans)], REJECTED, BOUNDS)
    assert failed_checks(verdict) == {"spans_well_formed"}
    failing = {e["name"]: e["observed"] for e in verdict["checks"]["spans_well_formed"]["expectations"]
               if not e["success"]}
    assert failing == {failed: 1.0}  # one offending window


def test_empty_input_fails_without_raising():
    verdict = check_boundary_dataset([], [], BOUNDS)
    assert not verdict["success"]
    assert failed_checks(verdict) == {"both_sources_present", "style_char_share_in_band", "rejection_rate_below_max"}
    assert (verdict["n_windows"], verdict["n_rejected"]) == (0, 0)
    json.dumps(verdict)
