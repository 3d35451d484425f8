"""Benchmark scores per arm: pass@1 and pass@k per suite and bucket, and the style of the answers' thinking."""

from dagster import AssetDep, AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from .common import OWNERS, materialize_heavy, upstream
from .partitions import checkpoint_to_scores, score_partitions

CODE_VERSION = "2"

# Which model each scored arm runs: the references come from the inputs, the arms from training.
MODEL_OF = {"teacher": ("teacher_model", None), "base": ("student_model", None)}


def scoring_generation(tessy: TessyConfig, arm: str) -> dict:
    """The backend that writes the answers: a teacher served elsewhere is scored on its server (its folder
    holds no weights); every other model on `evaluate.generation`."""
    s = tessy.settings
    teacher = s.inputs.teacher_model
    if arm == "teacher" and s.inputs.source == "files" and teacher.endpoint:
        urls = {"teacher": teacher.endpoint}
        names = {"teacher": teacher.served_name} if teacher.served_name else {}
        return s.evaluate.generation.model_copy(
            update={"backend": "openai", "urls": urls, "served_names": names}).model_dump()
    return s.evaluate.generation.model_dump()


@asset(group_name="evaluation", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="benchmark_scores",
       partitions_def=score_partitions,
       deps=["benchmark", "teacher_model", "student_model",
             AssetDep("student_checkpoint", partition_mapping=checkpoint_to_scores)],
       description="pass@1 and pass@k of one model on every benchmark suite (per difficulty or release bucket), "
                   "with thinking length, truncation and style-marker rates; one row per sampled answer.")
def benchmark_scores(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    s = tessy.settings
    model_asset, model_partition = MODEL_OF.get(arm, ("student_checkpoint", arm))
    inputs = {"benchmark": upstream(tessy, "benchmark"), "model": upstream(tessy, model_asset, model_partition)}
    settings = {**s.evaluate.model_dump(), "generation": scoring_generation(tessy, arm),
                "lexicons": s.lexicons.model_dump() if s.lexicons else None}
    return materialize_heavy(context, tessy, launcher, asset="benchmark_scores", partition=arm,
                             step="benchmark_scores", inputs=inputs, settings=settings, code_version=CODE_VERSION,
                             model_dir=inputs["model"]["dir"], role="teacher" if arm == "teacher" else "student")
