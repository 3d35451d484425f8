"""The inputs of the graph under the embedded default: prompts, benchmark, and the tiny teacher and student."""

from dagster import AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig
from tessy_dagster.toyworld.world import write_benchmark, write_prompts

from .common import OWNERS, materialize_heavy, materialize_local

CODE_VERSION = "1"


@asset(group_name="inputs", kinds={"python", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       description="Task prompts for trace synthesis (toy world: 1- to 3-step function problems).")
def prompts(context: AssetExecutionContext, tessy: TessyConfig):
    s = tessy.settings.toyworld
    return materialize_local(context, tessy, asset="prompts", partition=None, inputs={},
                             settings=s.model_dump(), code_version=CODE_VERSION,
                             build=lambda out: write_prompts(s, out))


@asset(group_name="inputs", kinds={"python", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       description="Held-out problems with hidden tests: the benchmark every arm is scored on.")
def benchmark(context: AssetExecutionContext, tessy: TessyConfig):
    s = tessy.settings.toyworld
    return materialize_local(context, tessy, asset="benchmark", partition=None, inputs={},
                             settings=s.model_dump(), code_version=CODE_VERSION,
                             build=lambda out: write_benchmark(s, out))


def _toy_model(role: str):
    @asset(name=f"{role}_model", group_name="inputs", kinds={"pytorch", "huggingface"}, owners=OWNERS,
           code_version=CODE_VERSION,
           description=f"The tiny {role}: tokenizer and causal LM trained from scratch (save_pretrained folder).")
    def _asset(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
        s = tessy.settings.toyworld
        # One thread each: teacher and student train side by side on two cores.
        return materialize_heavy(context, tessy, launcher, asset=f"{role}_model", partition=None, step="toy_model",
                                 inputs={}, settings=s.model_dump(), code_version=CODE_VERSION, role=role, threads=1)

    return _asset


teacher_model = _toy_model("teacher")
student_model = _toy_model("student")
