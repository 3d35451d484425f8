"""The SFT corpus per arm, guarded by a blocking Great Expectations suite over style-drift metrics."""

import dataclasses
import json
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult, asset

from resources import TessyConfig
from tessy_dagster.corpus.drift_check import DriftThresholds, validate_style_drift
from tessy_dagster.corpus.filters import build_sft_corpus
from tessy_dagster.storage import read_table

from .common import OWNERS, materialize_local, outcome_metadata, upstream
from .partitions import arm_partitions

CODE_VERSION = "2"
DRIFT_CHECK = "style_drift"
DRIFT_REPORT = "drift_report.json"


def drift_thresholds(tessy: TessyConfig, arm: str) -> DriftThresholds:
    c = tessy.settings.corpus
    return DriftThresholds(max_mean_teacher_token_share=c.max_mean_teacher_token_share.get(arm),
                           max_mean_teacher_marker_rate=c.max_mean_teacher_marker_rate.get(arm),
                           max_row_teacher_marker_rate=c.max_row_teacher_marker_rate.get(arm),
                           markers=tessy.settings.lexicons is not None)


def run_drift_suite(corpus_dir: Path, thresholds: DriftThresholds) -> dict:
    """Validate the corpus' per-trace drift metrics; the verdict is saved beside the corpus, in the artifact."""
    metrics = read_table(corpus_dir / "corpus.parquet").select(list(thresholds.columns)).to_pandas()
    report = validate_style_drift(metrics, thresholds)
    verdict = {"success": report.success, "n_rows": report.n_rows,
               "outcomes": [dataclasses.asdict(o) for o in report.outcomes]}
    (corpus_dir / DRIFT_REPORT).write_text(json.dumps(verdict, indent=2))
    return verdict


def drift_check_result(verdict: dict) -> AssetCheckResult:
    metadata = outcome_metadata(verdict["outcomes"])
    metadata["failed_expectations"] = ", ".join(o["name"] for o in verdict["outcomes"] if not o["success"]) or "none"
    return AssetCheckResult(check_name=DRIFT_CHECK, passed=verdict["success"], severity=AssetCheckSeverity.ERROR,
                            metadata=metadata)


@asset(group_name="corpus", kinds={"duckdb", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       partitions_def=arm_partitions, deps=["cooperative_traces", "student_model", "prompts", "benchmark"],
       check_specs=[AssetCheckSpec(DRIFT_CHECK, asset="sft_corpus", blocking=True,
                                   description="Great Expectations suite over per-trace style-drift metrics")],
       description="Filtered chat records (ended normally, within budget, answered, well-formed, decontaminated "
                   "against every benchmark suite, deduplicated) with per-trace drift metrics; drops counted per "
                   "reason and kept in dropped.parquet.")
def sft_corpus(context: AssetExecutionContext, tessy: TessyConfig):
    arm = context.partition_key
    # the student's chat template decides how the assistant turn is written; the prompts' tests say which
    # prompts ask for code; every benchmark problem is checked for contamination
    inputs = {"cooperative_traces": upstream(tessy, "cooperative_traces", arm),
              "student_model": upstream(tessy, "student_model"),
              "prompts": upstream(tessy, "prompts"), "benchmark": upstream(tessy, "benchmark")}
    filters = tessy.settings.corpus.filters
    budget = tessy.settings.cooperate.max_student_tokens
    lexicons = tessy.settings.lexicons
    thresholds = drift_thresholds(tessy, arm)

    def build(out: Path) -> dict:
        stats = build_sft_corpus(inputs["cooperative_traces"]["dir"] + "/traces.parquet", out / "corpus.parquet",
                                 budget, student=inputs["student_model"]["dir"], lexicons=lexicons, filters=filters,
                                 benchmark_path=inputs["benchmark"]["dir"] + "/problems.parquet",
                                 prompts_path=inputs["prompts"]["dir"] + "/prompts.parquet")
        verdict = run_drift_suite(out, thresholds)
        return {**stats, "drift_suite_passed": int(verdict["success"])}

    result = materialize_local(context, tessy, asset="sft_corpus", partition=arm, inputs=inputs,
                               settings={"max_student_tokens": budget, "filters": filters.model_dump(),
                                         "drift": dataclasses.asdict(thresholds),
                                         "lexicons": lexicons.model_dump() if lexicons else None},
                               code_version=CODE_VERSION, build=build)
    verdict = json.loads((tessy.dir("sft_corpus", arm) / DRIFT_REPORT).read_text())
    return MaterializeResult(metadata=result.metadata, data_version=result.data_version,
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
