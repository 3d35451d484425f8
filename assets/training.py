"""The fine-tuned student per arm."""

from dagster import AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from .common import OWNERS, materialize_heavy, upstream
from .corpus import assert_corpus_passed_drift
from .partitions import arm_partitions

CODE_VERSION = "2"  # 2: TRL SFTTrainer, every epoch kept under epochs/, training.json


@asset(group_name="training", kinds={"pytorch", "huggingface"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="student_checkpoint",
       partitions_def=arm_partitions, deps=["sft_corpus", "student_model"],
       description="The student after full-parameter SFT (TRL) on the arm's corpus: the reported epoch's "
                   "save_pretrained folder, every epoch under epochs/, losses in training.json.")
def student_checkpoint(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    assert_corpus_passed_drift(tessy.dir("sft_corpus", arm))
    inputs = {"sft_corpus": upstream(tessy, "sft_corpus", arm), "student_model": upstream(tessy, "student_model")}
    return materialize_heavy(context, tessy, launcher, asset="student_checkpoint", partition=arm,
                             step="student_checkpoint", inputs=inputs, settings=tessy.settings.sft.model_dump(),
                             code_version=CODE_VERSION, arm=arm)
