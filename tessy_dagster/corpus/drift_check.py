"""Blocking style-drift gate for a supervised-fine-tuning corpus.

Each row of the input DataFrame is one trace of the corpus, carrying per-trace
style-drift metrics:

* ``teacher_token_share``: share of the trace's tokens written by the teacher
  model (0..1);
* ``teacher_marker_rate``: teacher-lexicon style markers per 100 words;
* ``student_marker_rate``: student-lexicon style markers per 100 words.

:func:`validate_style_drift` runs a Great Expectations (1.x) suite over these
metrics and returns a :class:`DriftReport`; ``report.success`` says whether the
corpus may reach training.

Great Expectations is imported lazily inside :func:`validate_style_drift`
because importing it takes seconds; importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

TEACHER_TOKEN_SHARE = "teacher_token_share"
TEACHER_MARKER_RATE = "teacher_marker_rate"
STUDENT_MARKER_RATE = "student_marker_rate"
REQUIRED_COLUMNS: tuple[str, ...] = (
    TEACHER_TOKEN_SHARE,
    TEACHER_MARKER_RATE,
    STUDENT_MARKER_RATE,
)

# Key under which each expectation's stable outcome name is stored in its meta.
_META_KEY = "drift_check_name"


@dataclass(frozen=True)
class DriftThresholds:
    """Limits for the gate. A threshold set to ``None`` drops its expectation."""

    max_mean_teacher_token_share: float | None = 0.95
    max_mean_teacher_marker_rate: float | None = 1.0
    # Every row's teacher_marker_rate must be at or below this.
    max_row_teacher_marker_rate: float | None = 5.0
    min_rows: int = 1


@dataclass(frozen=True)
class ExpectationOutcome:
    """Result of one expectation of the suite.

    ``observed`` is a plain Python float (or ``None`` when GX observed nothing,
    e.g. the mean of an empty column): the observed value for aggregate
    expectations (mean, row count), the unexpected-row count for per-row ones.
    ``threshold`` is the single bound checked, or ``None`` where there is none
    (null checks, the two-sided unit-interval check).
    """

    name: str
    success: bool
    observed: float | None
    threshold: float | None


@dataclass(frozen=True)
class DriftReport:
    success: bool
    outcomes: list[ExpectationOutcome]
    n_rows: int

    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def _to_float(value: Any) -> float | None:
    """Convert a GX-observed value (possibly a numpy scalar) to a python float."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _build_expectations(gx: Any, thresholds: DriftThresholds) -> list[tuple[str, Any, float | None]]:
    """Return ``(name, expectation, threshold)`` triples for the suite."""
    E = gx.expectations
    items: list[tuple[str, Any, float | None]] = []

    def add(name: str, expectation_cls: Any, threshold: float | None, **kwargs: Any) -> None:
        items.append((name, expectation_cls(meta={_META_KEY: name}, **kwargs), threshold))

    add("row_count", E.ExpectTableRowCountToBeBetween, float(thresholds.min_rows),
        min_value=int(thresholds.min_rows))
    for column in REQUIRED_COLUMNS:
        add(f"no_nulls_{column}", E.ExpectColumnValuesToNotBeNull, None, column=column)
    add("teacher_token_share_in_unit_interval", E.ExpectColumnValuesToBeBetween, None,
        column=TEACHER_TOKEN_SHARE, min_value=0.0, max_value=1.0)
    for column in (TEACHER_MARKER_RATE, STUDENT_MARKER_RATE):
        add(f"{column}_nonnegative", E.ExpectColumnValuesToBeBetween, 0.0,
            column=column, min_value=0.0)

    if thresholds.max_mean_teacher_token_share is not None:
        limit = float(thresholds.max_mean_teacher_token_share)
        add("mean_teacher_token_share", E.ExpectColumnMeanToBeBetween, limit,
            column=TEACHER_TOKEN_SHARE, max_value=limit)
    if thresholds.max_mean_teacher_marker_rate is not None:
        limit = float(thresholds.max_mean_teacher_marker_rate)
        add("mean_teacher_marker_rate", E.ExpectColumnMeanToBeBetween, limit,
            column=TEACHER_MARKER_RATE, max_value=limit)
    if thresholds.max_row_teacher_marker_rate is not None:
        limit = float(thresholds.max_row_teacher_marker_rate)
        add("row_teacher_marker_rate", E.ExpectColumnValuesToBeBetween, limit,
            column=TEACHER_MARKER_RATE, max_value=limit)
    return items


def _observed(result: dict[str, Any]) -> float | None:
    if "observed_value" in result:
        return _to_float(result["observed_value"])
    if "unexpected_count" in result:
        return _to_float(result["unexpected_count"])
    return None


def validate_style_drift(metrics: "pandas.DataFrame", thresholds: DriftThresholds) -> DriftReport:
    """Run the style-drift suite over ``metrics`` (one row per trace).

    Raises ``ValueError`` if a required column is missing. An empty DataFrame
    yields a failed report (``row_count`` fails), not an exception.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"style-drift metrics are missing required column(s): {', '.join(missing)}"
        )

    # Must be set before great_expectations is first imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        # GX 1.24 imports the deprecated ``sre_constants``/``sre_parse`` shims;
        # keep that import-time noise out of callers running with -W error.
        warnings.filterwarnings(
            "ignore",
            message=r"module 'sre_(constants|parse)' is deprecated",
            category=DeprecationWarning,
        )
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)

    # Unique names so repeated calls in one process never collide.
    tag = uuid.uuid4().hex
    datasource = context.data_sources.add_pandas(f"style_drift_{tag}")
    asset = datasource.add_dataframe_asset(f"style_drift_metrics_{tag}")
    batch_definition = asset.add_batch_definition_whole_dataframe(f"style_drift_batch_{tag}")

    planned = _build_expectations(gx, thresholds)
    suite = context.suites.add(gx.ExpectationSuite(name=f"style_drift_suite_{tag}"))
    for _, expectation, _ in planned:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"style_drift_validation_{tag}", data=batch_definition, suite=suite)
    )

    frame = metrics.loc[:, list(REQUIRED_COLUMNS)]
    result = validation.run(batch_parameters={"dataframe": frame}, result_format="BASIC")

    by_name: dict[str, Any] = {}
    for expectation_result in result.results:
        meta = expectation_result.expectation_config.meta or {}
        by_name[meta.get(_META_KEY)] = expectation_result

    outcomes: list[ExpectationOutcome] = []
    for name, _, threshold in planned:
        er = by_name.get(name)
        if er is None:  # pragma: no cover - GX always reports every expectation
            outcomes.append(ExpectationOutcome(name, False, None, threshold))
            continue
        outcomes.append(
            ExpectationOutcome(
                name=name,
                success=bool(er.success),
                observed=_observed(er.result or {}),
                threshold=threshold,
            )
        )

    success = bool(result.success) and all(o.success for o in outcomes)
    return DriftReport(success=success, outcomes=outcomes, n_rows=int(len(metrics)))
