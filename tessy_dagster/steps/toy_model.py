"""Heavy step: train the toy world's teacher or student (tokenizer and model) from scratch."""

from ..settings import ToyWorldSettings
from ..toyworld.models import build_toy_model
from .runner import run_step


def build(params, out_dir, progress):
    return build_toy_model(params["role"], ToyWorldSettings.model_validate(params["settings"]), out_dir, progress)


if __name__ == "__main__":
    run_step(build)
