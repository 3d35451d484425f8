"""Model-based style-drift metrics per arm on the toy world, and the drift gate's verdict at the defaults.

Generates (or reuses, from --work) traces for the four arms and two independent samples of the student's own
(`student_only`: the reference the similarity is measured against, and the calibration sample) on the same N
prompts, balanced across difficulty; computes the metrics of tessy_dagster/corpus/drift_metrics.py on the
corpus rows (the traces the corpus filter keeps: ended normally, within budget, answered), calibrates on
the student's second sample, and runs the drift gate (corpus/drift_check.py) with `DriftSettings()`'s
defaults. Writes JSON.

    TESSY_HOME=/work/toyhome .venv/bin/python benchmarks/drift_metrics_by_arm.py --n 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("tessy", "teacher_only", "teacher_think", "teacher_answer")
SAMPLES = {"student_reference": 0, "student_calibration": 1_000_003}  # seed offsets (shards add their index)


def balanced_prompts(path: Path, n: int, seed: int) -> list[dict]:
    from tessy_dagster.storage import read_table

    rows = read_table(path).to_pylist()
    by = {}
    for r in rows:
        by.setdefault(r["difficulty"], []).append(r)
    rng = random.Random(seed)
    out = []
    groups = sorted(by)
    for i, d in enumerate(groups):
        take = n // len(groups) + (1 if i < n % len(groups) else 0)
        out += rng.sample(by[d], min(take, len(by[d])))
    return sorted(out, key=lambda r: r["problem_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("TESSY_HOME", ".tessy"))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--work", default="/tmp/drift_metrics_by_arm")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/drift_metrics_by_arm.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import pyarrow as pa
    import torch

    from tessy_dagster import schemas
    from tessy_dagster.cooperate.run import write_traces
    from tessy_dagster.corpus.drift_check import DriftThresholds, validate_style_drift, verdict_json
    from tessy_dagster.corpus.drift_metrics import DriftModels, StudentSimilarity, calibrate, compute_drift_metrics, summarize
    from tessy_dagster.corpus.style import marker_rates
    from resources.settings import resolve_settings
    from tessy_dagster.settings import DriftSettings, load_settings
    from tessy_dagster.storage import read_table, write_table

    torch.set_num_threads(args.threads)
    home, work = Path(args.home), Path(args.work)
    settings = resolve_settings(load_settings("toy"))
    dirs = {name: home / name / "all" for name in ("prompts", "teacher_model", "student_model", "boundary_model")}
    prompts = balanced_prompts(dirs["prompts"] / "prompts.parquet", args.n, seed=0)
    work.mkdir(parents=True, exist_ok=True)
    prompts_path = work / "prompts.parquet"
    write_table(pa.Table.from_pylist(prompts, schema=schemas.PROMPTS), prompts_path, schemas.PROMPTS)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    def head() -> dict:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "tessy_dagster/cooperate", "tessy_dagster/boundary"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return {"commit": commit, "engine_uncommitted_changes": dirty.splitlines()}

    # The traces are the engine's as it was when they were generated (a rerun reuses them): record that.
    generated = work / "generated_with.json"
    if not generated.exists():
        generated.write_text(json.dumps({**head(), "boundary_model": str(dirs["boundary_model"]),
                                         "at": time.strftime("%Y-%m-%d %H:%M:%S")}))
    timings, traces = {}, {}
    for name in ARMS + tuple(SAMPLES):
        out = work / name
        if not (out / "traces.parquet").exists():
            arm = name if name in ARMS else "student_only"
            cooperate = settings.cooperate.model_copy(update={"seed": settings.cooperate.seed + SAMPLES.get(name, 0)})
            start = time.perf_counter()
            out.mkdir(parents=True, exist_ok=True)
            write_traces(arm=arm, teacher_dir=dirs["teacher_model"], student_dir=dirs["student_model"],
                         boundary_dir=dirs["boundary_model"], prompts_path=prompts_path, digests={},
                         settings=cooperate, context_tokens=settings.boundary.context_tokens, out_dir=out,
                         work_dir=work / f"{name}.work", progress=log)
            timings[f"generate_{name}_s"] = round(time.perf_counter() - start, 1)
        rows = read_table(out / "traces.parquet").to_pylist()
        budget = settings.cooperate.max_student_tokens
        kept = [r for r in rows if r["ended"] == "end_of_thinking" and r["n_tokens_total"] <= budget
                and r["answer_finish_reason"] == "stop" and r["answer"].strip()]
        traces[name] = (rows, kept)
        log(f"{name}: {len(kept)}/{len(rows)} traces kept by the corpus filter")

    start = time.perf_counter()
    models = DriftModels(dirs["student_model"], dirs["boundary_model"], context_tokens=settings.boundary.context_tokens,
                         boundary_batch_size=args.batch_size)
    similarity = StudentSimilarity(models.local.tokenizer, traces["student_reference"][0])
    metrics = {}
    for name, (_, kept) in traces.items():
        t0 = time.perf_counter()
        metrics[name] = compute_drift_metrics(kept, models=models, similarity=similarity, batch_size=args.batch_size,
                                              classifier_max_tokens=settings.boundary.max_tokens)
        timings[f"metrics_{name}_s"] = round(time.perf_counter() - t0, 1)
        log(f"{name}: metrics in {timings[f'metrics_{name}_s']} s")
    timings["metrics_total_s"] = round(time.perf_counter() - start, 1)
    calibration = calibrate(metrics["student_calibration"], prompts=len(prompts), sample="student_calibration",
                            reference="student_reference")

    import pandas as pd

    drift = DriftSettings()
    lexicons = settings.lexicons
    results = {}
    for name, (rows, kept) in traces.items():
        summary = summarize(metrics[name])
        if lexicons is not None:
            rates = [marker_rates(r["thinking"], lexicons) for r in kept]
            summary["mean_teacher_marker_rate"] = sum(t for t, _ in rates) / len(rates) if rates else None
            summary["mean_student_marker_rate"] = sum(s for _, s in rates) / len(rates) if rates else None
        entry = {"traces_generated": len(rows), "traces_in_corpus": len(kept), **summary}
        # The gate as tessy and teacher_answer get it (gated arm settings), for every corpus, so the controls'
        # verdicts show what the gate would say about them; the lexicon expectations are off (model-based only).
        thresholds = DriftThresholds.for_arm(drift, "tessy", markers=False, max_mean_teacher_token_share=0.95)
        report = validate_style_drift(pd.DataFrame(metrics[name]), thresholds, calibration)
        verdict = verdict_json(report)
        verdict.pop("calibration")
        entry["gate_at_gated_defaults"] = verdict
        results[name] = entry
        print(f"{name:20s} n={len(kept):4d} nll={summary['mean_nll_thinking']} style={summary['mean_nll_style']} "
              f"cap={summary['mean_nll_capability']} sim={summary['mean_similarity']} "
              f"share={summary['mean_teacher_token_share']:.3f} passed={report.success} "
              f"failed={[o.name for o in report.failed()]}", file=sys.stderr)

    payload = {
        "profile": "toy", "home": str(home), "prompts": len(prompts),
        "prompts_by_difficulty": {d: sum(p["difficulty"] == d for p in prompts) for d in sorted({p["difficulty"] for p in prompts})},
        "traces_generated_with": json.loads(generated.read_text()), "metrics_computed_with": head(),
        "torch_threads": args.threads, "batch_size": args.batch_size,
        "drift_settings": drift.model_dump(), "calibration": calibration, "timings": timings, "arms": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
