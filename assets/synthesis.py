"""Cooperative traces per arm: TESSY's student-teacher cooperation, or the teacher alone."""

from dagster import AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from .common import OWNERS, materialize_heavy, upstream
from .partitions import arm_partitions

CODE_VERSION = "3"


@asset(group_name="synthesis", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       partitions_def=arm_partitions, deps=["prompts", "teacher_model", "student_model", "boundary_model"],
       description="Thinking traces per arm with each span's author, token counts per role and how they ended.")
def cooperative_traces(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    names = ("prompts", "teacher_model", "student_model") + (("boundary_model",) if arm == "tessy" else ())
    # teacher_only never consults the boundary model, so a new boundary model does not invalidate it.
    inputs = {name: upstream(tessy, name) for name in names}
    s = tessy.settings
    return materialize_heavy(context, tessy, launcher, asset="cooperative_traces", partition=arm,
                             step="cooperative_traces", inputs=inputs, settings=s.cooperate.model_dump(),
                             code_version=CODE_VERSION, arm=arm, context_tokens=s.boundary.context_tokens)
