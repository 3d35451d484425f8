"""Heavy step: generate answers to the held-out problems and score them in the sandbox."""

from ..evaluate.run import score_model
from ..settings import EvalSettings
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return score_model(
        model_dir=params["model_dir"], benchmark_path=inputs["benchmark"]["dir"] + "/problems.parquet",
        settings=EvalSettings.model_validate(params["settings"]), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
