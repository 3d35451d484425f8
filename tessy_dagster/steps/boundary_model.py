"""Heavy step: train the boundary token classifier on the annotated windows."""

from ..boundary.dataset import train_from_windows
from ..settings import BoundarySettings
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return train_from_windows(
        windows_path=inputs["boundary_dataset"]["dir"] + "/windows.parquet",
        tokenizer_dir=inputs["student_model"]["dir"],
        settings=BoundarySettings.model_validate(params["settings"]), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
