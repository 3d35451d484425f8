"""Heavy step: sample answers to every benchmark suite's problems and judge them (code in the sandbox)."""

from ..evaluate.run import score_model
from ..settings import EvalSettings, GenerationSettings, StyleLexicons
from .runner import run_step


def build(params, out_dir, progress):
    settings = dict(params["settings"])
    generation = GenerationSettings.model_validate(settings.pop("generation", {}))
    lexicons = settings.pop("lexicons", None)
    return score_model(
        model_dir=params["model_dir"], benchmark_path=params["inputs"]["benchmark"]["dir"] + "/problems.parquet",
        settings=EvalSettings.model_validate({**settings, "generation": generation.model_dump()}),
        generation=generation, lexicons=StyleLexicons.model_validate(lexicons) if lexicons else None,
        role=params.get("role", "model"), out_dir=out_dir, progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
