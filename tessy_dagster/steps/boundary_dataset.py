"""Heavy step: sample thinking traces from both models, cut them into windows, annotate style spans."""

from ..boundary.dataset import build_boundary_dataset
from ..settings import BoundarySettings
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return build_boundary_dataset(
        teacher_dir=inputs["teacher_model"]["dir"], student_dir=inputs["student_model"]["dir"],
        prompts_path=inputs["prompts"]["dir"] + "/prompts.parquet",
        settings=BoundarySettings.model_validate(params["settings"]), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
