"""Heavy step: full-parameter SFT of the student on one arm's corpus."""

from ..settings import SftSettings
from ..train.student import finetune_student
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return finetune_student(
        student_dir=inputs["student_model"]["dir"], corpus_path=inputs["sft_corpus"]["dir"] + "/corpus.parquet",
        settings=SftSettings.model_validate(params["settings"]), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
