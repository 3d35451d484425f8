"""The SFT corpus per arm, guarded by a blocking Great Expectations suite over style-drift metrics."""

import dataclasses
import json

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult, asset

from resources import StepLauncher, TessyConfig
from tessy_dagster.corpus.drift_check import DriftThresholds
from tessy_dagster.corpus.run import DRIFT_REPORT
from tessy_dagster.plots import corpus_figures

from .common import OWNERS, materialize_heavy, outcome_metadata, plot_metadata, upstream
from .partitions import arm_partitions

CODE_VERSION = "3"
DRIFT_CHECK = "style_drift"


def drift_thresholds(tessy: TessyConfig, arm: str) -> DriftThresholds:
    c = tessy.settings.corpus
    return DriftThresholds.for_arm(c.drift, arm, markers=tessy.settings.lexicons is not None,
                                   max_mean_teacher_token_share=c.max_mean_teacher_token_share.get(arm),
                                   max_mean_teacher_marker_rate=c.max_mean_teacher_marker_rate.get(arm),
                                   max_row_teacher_marker_rate=c.max_row_teacher_marker_rate.get(arm))


def drift_check_result(verdict: dict) -> AssetCheckResult:
    metadata = outcome_metadata(verdict["outcomes"])
    metadata["failed_expectations"] = ", ".join(o["name"] for o in verdict["outcomes"] if not o["success"]) or "none"
    return AssetCheckResult(check_name=DRIFT_CHECK, passed=verdict["success"], severity=AssetCheckSeverity.ERROR,
                            metadata=metadata)


@asset(group_name="corpus", kinds={"duckdb", "parquet", "pytorch"}, owners=OWNERS, code_version=CODE_VERSION,
       partitions_def=arm_partitions, pool="sft_corpus",
       deps=["cooperative_traces", "student_model", "boundary_model", "student_responses", "prompts", "benchmark"],
       check_specs=[AssetCheckSpec(DRIFT_CHECK, asset="sft_corpus", blocking=True,
                                   description="Great Expectations suite over per-trace style-drift metrics "
                                               "(the student's NLL per span kind, similarity to its own "
                                               "responses, style rates, teacher share), calibrated on the "
                                               "student's own traces")],
       description="Filtered chat records (ended normally, within budget, answered, well-formed, verified where "
                   "the arm samples again, decontaminated against every benchmark suite, deduplicated) with "
                   "per-trace drift metrics; drops counted per reason and kept in dropped.parquet (heavy step).")
def sft_corpus(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    # the student's chat template writes the assistant turn and the student scores every trace; the boundary
    # model labels style and capability; the student's own responses calibrate the gate; the prompts' tests
    # say which prompts ask for code; every benchmark problem is checked for contamination
    inputs = {"cooperative_traces": upstream(tessy, "cooperative_traces", arm),
              **{name: upstream(tessy, name) for name in ("student_model", "boundary_model", "student_responses",
                                                          "prompts", "benchmark")}}
    s = tessy.settings
    settings = {"max_student_tokens": s.cooperate.max_student_tokens, "filters": s.corpus.filters.model_dump(),
                "verified": s.cooperate.verify_answers.get(arm, 1) > 1,
                "thresholds": dataclasses.asdict(drift_thresholds(tessy, arm)),
                "lexicons": s.lexicons.model_dump() if s.lexicons else None,
                "context_tokens": s.boundary.context_tokens, "classifier_max_tokens": s.boundary.max_tokens,
                "batch_size": s.corpus.drift.batch_size}
    result = materialize_heavy(context, tessy, launcher, asset="sft_corpus", partition=arm, step="sft_corpus",
                               inputs=inputs, settings=settings, code_version=CODE_VERSION)
    verdict = json.loads((tessy.dir("sft_corpus", arm) / DRIFT_REPORT).read_text())
    figures = plot_metadata(corpus_figures(tessy.dir("sft_corpus", arm), arm))
    return MaterializeResult(metadata={**result.metadata, **figures}, data_version=result.data_version,
                             check_results=[drift_check_result(verdict)])


def assert_corpus_passed_drift(corpus_dir) -> None:
    """Training's own guard: refuse a corpus whose drift suite failed or never ran."""
    path = corpus_dir / DRIFT_REPORT
    if not path.exists():
        raise RuntimeError(f"{path} is missing: materialize sft_corpus (which runs the drift suite) first")
    verdict = json.loads(path.read_text())
    if not verdict["success"]:
        failed = [o["name"] for o in verdict["outcomes"] if not o["success"]]
        raise RuntimeError(f"{corpus_dir}: the style-drift suite failed ({', '.join(failed)}); not training on it")
