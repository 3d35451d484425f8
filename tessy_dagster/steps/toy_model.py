"""Heavy step: train the toy world's teacher or student (tokenizer and model) from scratch.

The folder is then inspected as any team's model folder is (digest, architecture, size, context, thinking
markers), and the record is kept beside the weights."""

from ..inputs.models import inspect_model_folder, write_model_record
from ..settings import ToyWorldSettings
from ..toyworld.models import build_toy_model
from .runner import run_step


def build(params, out_dir, progress):
    metrics = build_toy_model(params["role"], ToyWorldSettings.model_validate(params["settings"]), out_dir, progress)
    record = {**inspect_model_folder(out_dir, needs_weights=True), "path": params["out_dir"]}
    return {**write_model_record(record, out_dir), **metrics}


if __name__ == "__main__":
    run_step(build)
