"""Heavy step: train the two boundary predictors (B_T, B_S) on the annotated windows and evaluate them."""

from ..boundary.dataset import train_from_windows
from ..settings import BoundarySettings
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return train_from_windows(
        dataset_dir=inputs["boundary_dataset"]["dir"], toy_tokenizer_dir=inputs["student_model"]["dir"],
        settings=BoundarySettings.model_validate(params["settings"]), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
