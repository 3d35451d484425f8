"""Score one model on the benchmark suites: n sampled answers per problem, each judged by its suite's rules.

The model writes in its own chat template with thinking on; its thinking and answer are split by the
thinking format found in that template. Each answer goes to its suite's judge (the sandbox runs code);
pass@1 is the mean over samples and pass@k the unbiased estimate, per suite and per difficulty or
release bucket, with thinking length, truncation and (where lexicons are configured) marker rates.
A prompt that leaves no room for the answer in the model's context is a failed sample (`prompt_too_long`),
counted, not a crashed step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..cooperate.generation import load_generator
from ..corpus.style import marker_rates
from ..settings import EvalSettings, GenerationSettings, StyleLexicons
from ..storage import read_table, write_table
from .benchmarks import judge_many, summarize_scores
from .sandbox import SandboxLimits

SUMMARY_FILE = "summary.json"
SCORES_FILE = "scores.parquet"


def context_length(model_dir) -> int | None:
    """The model's context from its config (None for a served model whose folder has no config)."""
    config = Path(model_dir) / "config.json"
    if not config.exists():
        return None
    return json.loads(config.read_text()).get("max_position_embeddings")


def generate_samples(generator, problems: list[dict], settings: EvalSettings, context: int | None,
                     progress: Callable[[str], None]) -> list[dict]:
    """One row per (problem, sample): thinking, answer and how generation ended, before judging."""
    import torch

    torch.manual_seed(settings.seed)
    prompts = [generator.thinking_prompt(p["prompt"]) for p in problems]
    lengths = generator.count_tokens(prompts)
    fits = [context is None or n + settings.max_new_tokens <= context for n in lengths]
    todo = [i for i, ok in enumerate(fits) for _ in range(settings.samples_per_problem) if ok]
    progress(f"generating {len(todo)} answers ({settings.samples_per_problem} per problem) to "
             f"{sum(fits)} problems; {len(fits) - sum(fits)} prompts do not fit the context of {context} tokens")
    # One call per batch of the hf backend, for a progress line each: it samples batch after batch either way,
    # so the answers are the same as from one call. Other backends get every prompt at once.
    chunk = getattr(generator, "batch_size", None) or max(1, len(todo))
    generated = []
    for start in range(0, len(todo), chunk):
        generated += generator.generate([prompts[i] for i in todo[start:start + chunk]], settings.max_new_tokens,
                                        settings.sampling, stop_at_think_end=False)
        progress(f"answers {len(generated)}/{len(todo)} generated")
    outs = iter(generated)
    rows = []
    for i, p in enumerate(problems):
        for sample in range(settings.samples_per_problem):
            row = {"problem_id": p["problem_id"], "suite": p["suite"], "kind": p["kind"],
                   "difficulty": p["difficulty"], "release_date": p["release_date"], "sample": sample}
            if not fits[i]:
                rows.append({**row, "thinking": "", "answer": "", "closed": False,
                             "finish_reason": "prompt_too_long"})
                continue
            out = next(outs)
            thinking, answer, closed = generator.format.split(out.text)
            rows.append({**row, "thinking": thinking, "answer": answer, "closed": closed,
                         "finish_reason": out.finish_reason})
    for r, n in zip(rows, generator.count_tokens([r.get("thinking", "") for r in rows])):  # one tokenizer call
        r["thinking_tokens"] = n
    return rows


def judge_samples(rows: list[dict], problems: list[dict], settings: EvalSettings,
                  lexicons: StyleLexicons | None) -> list[dict]:
    """Judge every answered sample; unanswered ones fail with the reason (no answer, prompt too long)."""
    by_id = {(p["suite"], p["problem_id"]): p for p in problems}
    limits = SandboxLimits(timeout_s=settings.timeout_s, memory_mb=settings.memory_mb,
                           cpu_s=max(1, int(settings.timeout_s + 0.999)))
    verdicts = iter(judge_many([(by_id[(r["suite"], r["problem_id"])], r["answer"]) for r in rows if r["answer"]],
                               limits))
    out = []
    for r in rows:
        v = next(verdicts) if r["answer"] else None
        status = v.status if v else ("prompt_too_long" if r["finish_reason"] == "prompt_too_long" else "no_answer")
        teacher_rate, student_rate = marker_rates(r["thinking"], lexicons) if lexicons else (None, None)
        out.append({**r, "truncated": r["finish_reason"] == "length", "status": status,
                    "detail": v.detail if v else status.replace("_", " "), "n_passed": v.n_passed if v else 0,
                    "n_tests": v.n_tests if v else 0, "passed": bool(v and v.passed),
                    "teacher_marker_rate": teacher_rate, "student_marker_rate": student_rate})
    return out


def score_model(*, model_dir, benchmark_path, settings: EvalSettings, out_dir, role: str = "model",
                generation: GenerationSettings | None = None, lexicons: StyleLexicons | None = None,
                progress: Callable[[str], None] = print) -> dict:
    problems = read_table(benchmark_path).to_pylist()
    if not problems:
        raise ValueError(f"{benchmark_path}: the benchmark has no problems")
    generator = load_generator(model_dir, generation or settings.generation, role=role)
    rows = generate_samples(generator, problems, settings, context_length(model_dir), progress)
    progress(f"judging {sum(bool(r['answer']) for r in rows)} answers in the sandbox")
    rows = judge_samples(rows, problems, settings, lexicons)
    write_table(pa.Table.from_pylist(rows, schema=schemas.SCORES), Path(out_dir) / SCORES_FILE, schemas.SCORES)
    summary = summarize_scores(rows, settings.pass_at_k)
    for suite, scores in summary.items():
        scores.update(_suite_extras([r for r in rows if r["suite"] == suite]))
    (Path(out_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return flat_summary(summary)


def _suite_extras(rows: list[dict]) -> dict:
    """Counts of failure reasons a person asks about first, and mean marker rates where lexicons exist."""
    out = {"prompt_too_long": sum(r["status"] == "prompt_too_long" for r in rows),
           "no_answer": sum(r["status"] == "no_answer" for r in rows)}
    rated = [r for r in rows if r["teacher_marker_rate"] is not None]
    for key in ("teacher_marker_rate", "student_marker_rate"):
        if rated:
            out[key] = sum(r[key] for r in rated) / len(rated)
    return out


def flat_summary(summary: dict) -> dict:
    """summary.json flattened into asset metadata: `humaneval.pass@1`, `toy.3-step.pass@1`,
    `livecodebench_v6.2025-03.pass@1`, ..."""
    flat = {}
    for suite, scores in summary.items():
        for key, value in scores.items():
            if isinstance(value, dict):  # by_difficulty / by_release_month: bucket -> scores
                for bucket, bucket_scores in value.items():
                    flat.update({f"{suite}.{bucket}.{k}": v for k, v in bucket_scores.items()})
            else:
                flat[f"{suite}.{key}"] = value
    return flat
