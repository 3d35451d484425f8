"""Heavy step: one arm's SFT corpus (filters, drift metrics under the student and the boundary model, the
drift gate's verdict). The student's forward passes make it a GPU step in production."""

from ..corpus.drift_check import DriftThresholds
from ..corpus.run import write_corpus
from ..settings import CorpusFilters, StyleLexicons
from .runner import run_step


def build(params, out_dir, progress):
    inputs, s = params["inputs"], params["settings"]
    return write_corpus(
        traces_path=inputs["cooperative_traces"]["dir"] + "/traces.parquet",
        student_dir=inputs["student_model"]["dir"], boundary_dir=inputs["boundary_model"]["dir"],
        student_responses_dir=inputs["student_responses"]["dir"],
        prompts_path=inputs["prompts"]["dir"] + "/prompts.parquet",
        benchmark_path=inputs["benchmark"]["dir"] + "/problems.parquet", out_dir=out_dir,
        max_student_tokens=s["max_student_tokens"], filters=CorpusFilters.model_validate(s["filters"]),
        thresholds=DriftThresholds(**s["thresholds"]), verified=s["verified"],
        lexicons=StyleLexicons.model_validate(s["lexicons"]) if s["lexicons"] else None,
        context_tokens=s["context_tokens"], classifier_max_tokens=s["classifier_max_tokens"],
        batch_size=s["batch_size"], progress=progress,
    )


if __name__ == "__main__":
    run_step(build)
