"""Heavy step: full-parameter SFT of the student on one arm's corpus (TRL's SFTTrainer).

With `sft.num_processes` > 1 the training runs under `accelerate launch` (FSDP) or `torchrun` as child processes
of this step; rank 0 writes the artifact and this process reports it through Dagster Pipes.
"""

from ..settings import SftSettings
from ..train.student import finetune_student
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return finetune_student(
        student_dir=inputs["student_model"]["dir"], corpus_path=inputs["sft_corpus"]["dir"] + "/corpus.parquet",
        settings=SftSettings.model_validate(params["settings"]), out_dir=out_dir, arm=params.get("arm"),
        progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
