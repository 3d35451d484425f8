"""A small runner for Great Expectations (1.x) suites over one pandas DataFrame.

Callers describe each expectation as plain data (:func:`expect`): a stable
outcome name, the GX class name in ``gx.expectations``, the single bound it
checks and its arguments. :func:`run_suite` builds the suite, validates the
frame and returns one :class:`ExpectationOutcome` per planned expectation, in
plan order.

Great Expectations is imported lazily inside :func:`run_suite` because
importing it takes seconds; describing expectations needs no GX at all.
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

# Key under which each expectation's outcome name is stored in its meta.
_META_KEY = "outcome_name"


@dataclass(frozen=True)
class Planned:
    """One expectation to run; ``kind`` names its class in ``gx.expectations``."""

    name: str
    kind: str
    threshold: float | None
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ExpectationOutcome:
    """Result of one expectation of the suite.

    ``observed`` is a plain Python float (or ``None`` when GX observed nothing,
    e.g. the mean of an empty column): the observed value for aggregate
    expectations (mean, sum, row count), the unexpected-row count for per-row
    ones, the count of missing values for set-containment ones.
    ``threshold`` is the single bound checked, or ``None`` where there is none
    (null checks, two-sided checks).
    """

    name: str
    success: bool
    observed: float | None
    threshold: float | None


def expect(name: str, kind: str, threshold: float | None = None, **kwargs: Any) -> Planned:
    """Plan ``gx.expectations.<kind>(**kwargs)``, reported under ``name``."""
    return Planned(name, kind, None if threshold is None else float(threshold), kwargs)


def _to_float(value: Any) -> float | None:
    """Convert a GX-observed value (possibly a numpy scalar) to a python float."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _observed(result: dict[str, Any]) -> float | None:
    # Set-containment expectations report observed_value=None and put their
    # measure in missing_count, hence the fall-through.
    for key in ("observed_value", "unexpected_count", "missing_count"):
        value = _to_float(result.get(key))
        if value is not None:
            return value
    return None


def _import_gx() -> Any:
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
    return gx


def run_suite(
    frame: "pandas.DataFrame", planned: list[Planned], label: str
) -> tuple[bool, list[ExpectationOutcome]]:
    """Validate ``frame`` against ``planned``; ``label`` prefixes the GX object names.

    Returns the suite's overall success and one outcome per planned
    expectation, in plan order.
    """
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)

    # Unique names so repeated calls in one process never collide.
    tag = f"{label}_{uuid.uuid4().hex}"
    datasource = context.data_sources.add_pandas(f"{tag}_source")
    asset = datasource.add_dataframe_asset(f"{tag}_asset")
    batch_definition = asset.add_batch_definition_whole_dataframe(f"{tag}_batch")

    suite = context.suites.add(gx.ExpectationSuite(name=f"{tag}_suite"))
    for p in planned:
        expectation_cls = getattr(gx.expectations, p.kind)
        suite.add_expectation(expectation_cls(meta={_META_KEY: p.name}, **p.kwargs))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{tag}_validation", data=batch_definition, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": frame}, result_format="BASIC")

    by_name = {(er.expectation_config.meta or {}).get(_META_KEY): er for er in result.results}
    outcomes: list[ExpectationOutcome] = []
    for p in planned:
        er = by_name.get(p.name)
        if er is None:  # pragma: no cover - GX always reports every expectation
            outcomes.append(ExpectationOutcome(p.name, False, None, p.threshold))
            continue
        outcomes.append(ExpectationOutcome(p.name, bool(er.success), _observed(er.result or {}), p.threshold))

    success = bool(result.success) and all(o.success for o in outcomes)
    return success, outcomes


def run_checks(frame: "pandas.DataFrame", plan: dict[str, list[Planned]], label: str) -> tuple[bool, dict]:
    """One suite over ``frame`` whose expectations are grouped into named checks (one Dagster asset check
    each): the overall success and, per check, whether all its expectations passed and their outcomes as
    dicts (JSON-serialisable, for the verdict file and the check's metadata)."""
    import dataclasses

    success, outcomes = run_suite(frame, [p for ps in plan.values() for p in ps], label)
    by_name = {o.name: o for o in outcomes}
    checks = {}
    for check, planned in plan.items():
        results = [by_name[p.name] for p in planned]
        checks[check] = {"passed": all(o.success for o in results),
                         "expectations": [dataclasses.asdict(o) for o in results]}
    return success and all(c["passed"] for c in checks.values()), checks
