"""The boundary dataset (annotated windows of both models' traces) and the two boundary predictors trained on it."""

import json

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult,
                     asset)

from resources import StepLauncher, TessyConfig
from tessy_dagster.boundary.dataset import CHECKS_FILE
from tessy_dagster.boundary.quality import CHECKS
from tessy_dagster.plots import boundary_figures

from .common import OWNERS, materialize_heavy, outcome_metadata, plot_metadata, upstream, with_metadata

CODE_VERSION = "2"

CHECK_DESCRIPTIONS = {
    "both_sources_present": "teacher and student windows both survived annotation",
    "style_char_share_in_band": "mean share of characters inside style spans is within the configured band",
    "rejection_rate_below_max": "windows the annotator's reply could not be aligned to stay below the limit",
    "spans_well_formed": "style spans lie inside their text, are non-empty, ordered and non-overlapping",
}


def dataset_check_results(verdict: dict) -> list[AssetCheckResult]:
    results = []
    for name in CHECKS:
        check = verdict["checks"][name]
        results.append(AssetCheckResult(check_name=name, passed=check["passed"], severity=AssetCheckSeverity.ERROR,
                                        metadata=outcome_metadata(check["expectations"])))
    return results


@asset(group_name="boundary", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="boundary_dataset",
       deps=["prompts", "teacher_model", "student_model"],
       check_specs=[AssetCheckSpec(name, asset="boundary_dataset", blocking=True,
                                   description=f"Great Expectations: {text}")
                    for name, text in CHECK_DESCRIPTIONS.items()],
       description="Windows of teacher and student thinking traces with style spans as character offsets, "
                   "and the windows the annotator rejected, with reasons.")
def boundary_dataset(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    inputs = {name: upstream(tessy, name) for name in ("prompts", "teacher_model", "student_model")}
    result = materialize_heavy(context, tessy, launcher, asset="boundary_dataset", partition=None,
                               step="boundary_dataset", inputs=inputs, settings=tessy.settings.boundary.model_dump(),
                               code_version=CODE_VERSION)
    verdict = json.loads((tessy.dir("boundary_dataset") / CHECKS_FILE).read_text())
    return MaterializeResult(metadata=result.metadata, data_version=result.data_version,
                             check_results=dataset_check_results(verdict))


@asset(group_name="boundary", kinds={"pytorch", "huggingface"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="boundary_model",
       deps=["boundary_dataset", "student_model"],
       description="B_T and B_S, causal token classifiers (is the next token style?), with held-out token "
                   "metrics and first-switch accuracy in metadata and eval.json.")
def boundary_model(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    inputs = {name: upstream(tessy, name) for name in ("boundary_dataset", "student_model")}
    result = materialize_heavy(context, tessy, launcher, asset="boundary_model", partition=None,
                               step="boundary_model", inputs=inputs, settings=tessy.settings.boundary.model_dump(),
                               code_version=CODE_VERSION)
    return with_metadata(result, plot_metadata(boundary_figures(tessy.dir("boundary_model"))))
