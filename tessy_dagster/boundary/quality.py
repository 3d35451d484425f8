"""Great Expectations checks for the boundary dataset (annotated windows from both models).

:func:`check_boundary_dataset` puts every window, accepted or rejected, in one
pandas frame with derived per-window columns, runs one GX suite over it and
groups the expectation outcomes into the four :data:`CHECKS`. Columns that only
make sense for accepted windows are null on rejected rows; GX leaves nulls out
of means, distinct-value sets and per-row checks, so rejected rows count only
towards the rejection rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..gx_suite import Planned, expect, run_checks

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

CHECKS = ("both_sources_present", "style_char_share_in_band", "rejection_rate_below_max", "spans_well_formed")

# Derived frame columns and their dtypes (explicit, so an empty frame still has them).
COLUMNS = {
    "rejected": "float64",  # 1 for a rejected window, else 0
    "accepted": "float64",  # 1 - rejected
    "accepted_source": "object",  # source_model of an accepted window
    "style_char_share": "float64",  # characters inside style spans / characters of the text
    "text_chars": "float64",
    "min_span_start": "float64",  # null where a window has no spans
    "max_span_end": "float64",
    "empty_spans": "float64",  # spans with start >= end
    "overlapping_spans": "float64",  # spans starting before the previous span's end (overlap or out of order)
}


@dataclass(frozen=True)
class DatasetBounds:
    min_style_char_share: float  # mean share of window characters inside style spans, accepted windows
    max_style_char_share: float
    max_rejection_rate: float  # rejected windows / (accepted + rejected)
    sources: tuple[str, ...] = ("teacher", "student")


def _accepted_row(window: dict) -> dict[str, Any]:
    text_chars = len(window["text"])
    spans = [(s["start"], s["end"]) for s in window["style_spans"]]
    style_chars = sum(end - start for start, end in spans)
    return {
        "rejected": 0.0,
        "accepted": 1.0,
        "accepted_source": window["source_model"],
        "style_char_share": style_chars / text_chars if text_chars else 0.0,
        "text_chars": text_chars,
        "min_span_start": min((start for start, _ in spans), default=None),
        "max_span_end": max((end for _, end in spans), default=None),
        "empty_spans": sum(start >= end for start, end in spans),
        # Compared in the given order, so an unsorted list counts here too.
        "overlapping_spans": sum(nxt[0] < prev[1] for prev, nxt in zip(spans, spans[1:])),
    }


def _frame(windows: list[dict], rejected: list[dict]) -> "pandas.DataFrame":
    import pandas as pd  # lazily, like GX: importing this module stays cheap

    # Rejected rows carry only the 0/1 flags; everything else stays null.
    rows = [_accepted_row(w) for w in windows] + [{"rejected": 1.0, "accepted": 0.0} for _ in rejected]
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS)).astype(COLUMNS)


def _plan(bounds: DatasetBounds) -> dict[str, list[Planned]]:
    """Expectations per check, in :data:`CHECKS` order."""
    return {
        "both_sources_present": [
            expect("accepted_windows", "ExpectColumnSumToBeBetween", 1, column="accepted", min_value=1),
            expect("missing_sources", "ExpectColumnDistinctValuesToContainSet", 0,
                   column="accepted_source", value_set=list(bounds.sources)),
        ],
        "style_char_share_in_band": [
            expect("mean_style_char_share_min", "ExpectColumnMeanToBeBetween", bounds.min_style_char_share,
                   column="style_char_share", min_value=float(bounds.min_style_char_share)),
            expect("mean_style_char_share_max", "ExpectColumnMeanToBeBetween", bounds.max_style_char_share,
                   column="style_char_share", max_value=float(bounds.max_style_char_share)),
        ],
        "rejection_rate_below_max": [
            expect("rejection_rate", "ExpectColumnMeanToBeBetween", bounds.max_rejection_rate,
                   column="rejected", max_value=float(bounds.max_rejection_rate)),
        ],
        # Per-row expectations: observed is the number of offending windows.
        "spans_well_formed": [
            expect("span_starts_nonnegative", "ExpectColumnValuesToBeBetween", 0,
                   column="min_span_start", min_value=0),
            expect("span_ends_within_text", "ExpectColumnPairValuesAToBeGreaterThanB",
                   column_A="text_chars", column_B="max_span_end", or_equal=True,
                   ignore_row_if="either_value_is_missing"),
            expect("spans_non_empty", "ExpectColumnValuesToBeBetween", 0, column="empty_spans", max_value=0),
            expect("spans_sorted_without_overlap", "ExpectColumnValuesToBeBetween", 0,
                   column="overlapping_spans", max_value=0),
        ],
    }


def check_boundary_dataset(windows: list[dict], rejected: list[dict], bounds: DatasetBounds) -> dict:
    """JSON-serialisable verdict: {"success": bool, "n_windows": int, "n_rejected": int,
       "checks": {check_name: {"passed": bool, "expectations": [ {name, success, observed, threshold}, ... ]}}}

    An empty input fails (no accepted windows, no rejection rate), it does not raise.
    """
    plan = _plan(bounds)
    success, checks = run_checks(_frame(windows, rejected), plan, "boundary_dataset")
    return {"success": success, "n_windows": len(windows), "n_rejected": len(rejected), "checks": checks}
