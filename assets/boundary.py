"""The boundary dataset (annotated windows of both models' traces) and the boundary model trained on it."""

from dagster import AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from .common import OWNERS, materialize_heavy, upstream

CODE_VERSION = "1"


@asset(group_name="boundary", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       deps=["prompts", "teacher_model", "student_model"],
       description="Windows of teacher and student thinking traces with style spans as character offsets.")
def boundary_dataset(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    inputs = {name: upstream(tessy, name) for name in ("prompts", "teacher_model", "student_model")}
    return materialize_heavy(context, tessy, launcher, asset="boundary_dataset", partition=None,
                             step="boundary_dataset", inputs=inputs, settings=tessy.settings.boundary.model_dump(),
                             code_version=CODE_VERSION)


@asset(group_name="boundary", kinds={"pytorch", "huggingface"}, owners=OWNERS, code_version=CODE_VERSION,
       deps=["boundary_dataset", "student_model"],
       description="Causal token classifier: is the next token style? (validation metrics in metadata).")
def boundary_model(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    inputs = {name: upstream(tessy, name) for name in ("boundary_dataset", "student_model")}
    return materialize_heavy(context, tessy, launcher, asset="boundary_model", partition=None,
                             step="boundary_model", inputs=inputs, settings=tessy.settings.boundary.model_dump(),
                             code_version=CODE_VERSION)
