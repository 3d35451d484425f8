"""Heavy step: the student's own responses, two independent samples per prompt.

`reference/traces.parquet` is the sample the drift metrics measure every corpus against (the TF-IDF
similarity to the student's own response to the same prompt, and the IDF vocabulary); `calibration/
traces.parquet` is a second sample with another seed, whose metrics against the first are the student's own
(its NLLs, its self-similarity): the drift gate's thresholds are relative to them. Both are TRACES tables
of the `student_only` plan (the student thinks and answers alone), written by the same code as the arms, so a
rerun over a grown prompt set carries each sample's unchanged responses over from the artifact it replaces and
samples only the new prompts (cooperate/carry_over.py).
"""

from pathlib import Path

from ..cooperate.run import write_traces
from ..settings import CooperateSettings
from .runner import run_step

# sample -> seed offset over cooperate.seed: the two samples' prompt seeds (carry_over.prompt_seed) differ
SAMPLES = {"reference": 0, "calibration": 1_000_003}


def build(params, out_dir, progress):
    inputs = params["inputs"]
    settings = CooperateSettings.model_validate(params["settings"])
    metrics = {}
    for sample, offset in SAMPLES.items():
        out = Path(out_dir) / sample
        out.mkdir(parents=True, exist_ok=True)
        progress(f"student_responses: sampling the {sample} responses (cooperate seed {settings.seed + offset})")
        sample_metrics = write_traces(
            arm="student_only", teacher_dir=inputs["teacher_model"]["dir"], student_dir=inputs["student_model"]["dir"],
            boundary_dir=None, prompts_path=inputs["prompts"]["dir"] + "/prompts.parquet",
            digests={name: value["digest"] for name, value in inputs.items()},
            settings=settings.model_copy(update={"seed": settings.seed + offset}),
            context_tokens=params.get("context_tokens", 0), out_dir=out,
            work_dir=Path(params["work_dir"]) / sample, previous=Path(params["out_dir"]) / sample / "traces.parquet",
            code_version=params["code_version"], progress=progress)
        metrics.update({f"{sample}_{k}": v for k, v in sample_metrics.items() if isinstance(v, (int, float))})
    metrics["self_similarity"] = self_similarity(inputs["student_model"]["dir"], out_dir)
    progress(f"student_responses: self-similarity (TF-IDF cosine, calibration vs reference) "
             f"{metrics['self_similarity']:.4f}")
    return metrics


def self_similarity(student_dir, out_dir) -> float:
    """Mean TF-IDF cosine of the calibration sample to the reference sample, prompt by prompt."""
    from transformers import AutoTokenizer

    from ..corpus.drift_metrics import StudentSimilarity
    from ..storage import read_table

    reference = read_table(Path(out_dir) / "reference" / "traces.parquet").to_pylist()
    calibration = read_table(Path(out_dir) / "calibration" / "traces.parquet").to_pylist()
    sims = [s for s in StudentSimilarity(AutoTokenizer.from_pretrained(str(student_dir)), reference)
            .similarity(calibration) if s is not None]
    return sum(sims) / len(sims) if sims else 0.0


if __name__ == "__main__":
    run_step(build)
