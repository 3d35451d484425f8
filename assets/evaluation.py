"""Benchmark scores per arm: pass@1 on the held-out problems and the style-marker rates of the answers."""

from dagster import AssetDep, AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from .common import OWNERS, materialize_heavy, upstream
from .partitions import checkpoint_to_scores, score_partitions

CODE_VERSION = "1"

# Which model each scored arm runs: the references come from the inputs, the arms from training.
MODEL_OF = {"teacher": ("teacher_model", None), "base": ("student_model", None)}


@asset(group_name="evaluation", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       partitions_def=score_partitions,
       deps=["benchmark", "teacher_model", "student_model",
             AssetDep("student_checkpoint", partition_mapping=checkpoint_to_scores)],
       description="pass@1 (overall and per step count) and style-marker rates of one model on the benchmark.")
def benchmark_scores(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    model_asset, model_partition = MODEL_OF.get(arm, ("student_checkpoint", arm))
    inputs = {"benchmark": upstream(tessy, "benchmark"), "model": upstream(tessy, model_asset, model_partition)}
    return materialize_heavy(context, tessy, launcher, asset="benchmark_scores", partition=arm,
                             step="benchmark_scores", inputs=inputs, settings=tessy.settings.evaluate.model_dump(),
                             code_version=CODE_VERSION, model_dir=inputs["model"]["dir"])
