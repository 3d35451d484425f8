"""Heavy step: write one arm's thinking traces (TESSY cooperation, or the teacher alone).

The artifact being replaced stays in `out_dir` while the step builds the new one, so its traces of unchanged
prompts are carried over (cooperate/carry_over.py) and only the rest are generated."""

from pathlib import Path

from ..cooperate.run import write_traces
from ..settings import CooperateSettings
from .runner import run_step


def build(params, out_dir, progress):
    inputs = params["inputs"]
    return write_traces(
        arm=params["arm"], teacher_dir=inputs["teacher_model"]["dir"], student_dir=inputs["student_model"]["dir"],
        boundary_dir=inputs.get("boundary_model", {}).get("dir"), prompts_path=inputs["prompts"]["dir"] + "/prompts.parquet",
        digests={name: value["digest"] for name, value in inputs.items()},
        settings=CooperateSettings.model_validate(params["settings"]),
        context_tokens=params["context_tokens"], out_dir=out_dir, work_dir=params["work_dir"],
        previous=Path(params["out_dir"]) / "traces.parquet", code_version=params["code_version"], progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
