"""Run one arm over the task prompts and write its traces as Parquet, in shards that survive a kill.

A rerun generates only the prompts whose trace inputs changed and carries every other row over from the
artifact it replaces (`previous`; carry_over.py says what a trace depends on and how seeds stay those of a
full rebuild). The prompts to generate are cut into shards of `shard_size` in prompt-id order. Each finished
shard is written under a temporary name and renamed into place in the step's work folder, so a run killed at
any moment and started again skips the whole shards and redoes only the one in flight: every prompt ends up
exactly once. A shard counts as finished only when it holds exactly the prompts and trace keys planned for it.

Every trace is judged against its prompt's tests in the sandbox (`corpus.correctness.judge_traces`: the
thinking's final code and the answer; null verdicts where the prompt has no tests of a known kind).
With `verify_answers[arm] = N > 1` (rejection sampling), the prompts of a shard whose answer fails are drawn
again, a new attempt of the same engine with a fresh seed (`sample_seed`), up to N samples in all; a prompt
keeps its first passing sample, else its last. Prompts without tests are drawn once. A shard holds its prompts'
final rows, each with its `sample` number, so `samples_drawn` is their sum (over the artifact's rows, carried
over or not) and a resumed run counts the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schemas
from ..corpus.correctness import judge_traces
from ..evaluate.sandbox import SandboxLimits
from ..settings import ALL_ARMS, CooperateSettings
from ..storage import read_table, write_table
from .carry_over import carry_over, draw_seed, prompt_seed, trace_keys
from .baselines import draw_arm, uses_boundary
from .engine import CooperativeEngine
from .generation import load_generator


def write_traces(*, arm: str, teacher_dir, student_dir, boundary_dir, prompts_path, digests: dict,
                 settings: CooperateSettings, context_tokens: int, out_dir, work_dir, previous=None,
                 code_version: str = "", progress: Callable[[str], None] = print) -> dict:
    """Write `out_dir/traces.parquet`, one row per prompt, and return its metrics. `previous` is the
    traces.parquet of the artifact being replaced (its rows with unchanged trace keys are carried over);
    `code_version` is the step's, part of every trace key."""
    if arm not in ALL_ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {ALL_ARMS}")
    cooperative = uses_boundary(arm)
    if cooperative and not boundary_dir:
        raise ValueError(f"the {arm} arm needs a boundary model (boundary_dir)")
    table = read_table(prompts_path).to_pylist()
    prompts = sorted((r["problem_id"], r["prompt"]) for r in table)
    if not prompts:
        raise ValueError(f"{prompts_path}: no prompts")
    tests = {r["problem_id"]: r.get("tests") or "" for r in table}
    max_samples = settings.verify_answers.get(arm, 1)
    provenance = _provenance(cooperative, digests, settings)
    keys = trace_keys([(pid, text, tests[pid]) for pid, text in prompts], arm=arm, provenance=provenance,
                      settings=settings, samples=max_samples, code_version=code_version)
    carried = carry_over(previous, keys, progress)
    carried_ids = set(carried.column("prompt_id").to_pylist())
    to_generate = [(pid, text) for pid, text in prompts if pid not in carried_ids]
    shards = [to_generate[i:i + settings.shard_size] for i in range(0, len(to_generate), settings.shard_size)]
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(shards)) if not _shard_done(work_dir, i, shards[i], keys)]
    if len(todo) < len(shards):
        progress(f"resuming: {len(shards) - len(todo)} of {len(shards)} shards were written by an earlier run")
    if todo:
        import torch

        engine = _engine(arm, cooperative, teacher_dir, student_dir, boundary_dir, provenance, settings,
                         context_tokens, progress)
        seeds = {pid: prompt_seed(settings.seed, pid) for pid, _ in to_generate}
        for i in todo:
            rows = _sample_shard(engine, arm, shards[i], seeds, keys, max_samples, tests, settings,
                                 f"shard {i + 1}/{len(shards)}", progress, torch, teacher_dir)
            _write_shard(rows, work_dir, i)
            judged = [r for r in rows if r["answer_passed"] is not None]
            progress(f"shard {i + 1}/{len(shards)} written ({len(rows)} traces, answers passing "
                     f"{sum(r['answer_passed'] for r in judged)}/{len(judged)} with tests, "
                     f"{sum(r['sample'] for r in rows)} samples drawn)")
    parts = [carried] + [read_table(_shard_path(work_dir, i)) for i in range(len(shards))]
    traces = pa.concat_tables([t.select(schemas.TRACES.names).cast(schemas.TRACES) for t in parts])
    traces = traces.sort_by("prompt_id")  # the order a full rebuild writes
    if traces.column("prompt_id").to_pylist() != [pid for pid, _ in prompts]:
        raise RuntimeError(f"{work_dir}: the shards and the carried-over rows do not hold every prompt exactly "
                           f"once; delete the folder and run again")
    write_table(traces, Path(out_dir) / "traces.parquet", schemas.TRACES)
    # the metrics read only the counts and verdicts, not the texts
    metrics = trace_metrics(traces.drop_columns(["prompt", "thinking", "answer", "spans"]).to_pylist(),
                            verified=max_samples > 1)
    return {**metrics, "generated": len(to_generate), "carried_over": len(carried_ids)}


def sample_seed(first_seed: int, sample: int) -> int:
    """The seed of a prompt's `sample`-th draw (1-based): the prompt's own seed (`prompt_seed`) for the first,
    so a run without verification samples as before; later draws are 2**32 apart, clear of every first seed."""
    return first_seed + (sample - 1) * 2 ** 32


def _sample_shard(engine, arm, prompts, seeds, keys, max_samples, tests, settings, label, progress, torch,
                  teacher_dir):
    """The shard's final rows: one draw of every prompt, then draws of the prompts whose answer failed, up to
    `max_samples` in all; each row judged and numbered."""
    final: dict[str, dict] = {}
    pending = list(prompts)
    limits = SandboxLimits()
    for sample in range(1, max_samples + 1):
        # A draw does not depend on which shards or draws ran before it; each row records its prompt's seed.
        draw = {pid: sample_seed(seeds[pid], sample) for pid, _ in pending}
        seed = draw_seed(draw.values())
        torch.manual_seed(seed)
        rows = draw_arm(engine, arm, pending, seed=seed, settings=settings, teacher_dir=teacher_dir,
                        progress=progress)
        verdicts = judge_traces(rows, tests, limits=limits, workers=settings.judge_workers)
        for row, verdict in zip(rows, verdicts):
            row.update(sample=sample, seed=draw[row["prompt_id"]], trace_key=keys[row["prompt_id"]],
                       thinking_passed=verdict["thinking_passed"], answer_passed=verdict["answer_passed"])
            final[row["prompt_id"]] = row
        pending = [(pid, text) for pid, text in pending if final[pid]["answer_passed"] is False]
        if max_samples > 1:
            left = "to draw again" if sample < max_samples else "never passed"
            progress(f"{label}: sample {sample}/{max_samples}: {len(rows)} drawn, "
                     f"{sum(r['answer_passed'] is True for r in rows)} answers pass, {len(pending)} {left}")
        if not pending:
            break
    return [final[pid] for pid, _ in prompts]


def _provenance(cooperative: bool, digests: dict, settings: CooperateSettings) -> dict:
    """What every row records about its models and sampling (its seed is the prompt's own, set per row)."""
    return {
        "sampling": json.dumps(settings.sampling.model_dump(), sort_keys=True),
        "teacher_digest": digests.get("teacher_model", ""), "student_digest": digests.get("student_model", ""),
        "boundary_digest": digests.get("boundary_model", "") if cooperative else "",
    }


def _engine(arm, cooperative, teacher_dir, student_dir, boundary_dir, provenance, settings, context_tokens,
            progress) -> CooperativeEngine:
    # each model's end-of-thinking marker comes from its own chat template (LocalTokenizer.format)
    models = {role: load_generator(folder, settings.generation, role=role)
              for role, folder in (("teacher", teacher_dir), ("student", student_dir))}
    boundary = None
    if cooperative:
        from ..boundary.model import BoundaryPredictor

        boundary = BoundaryPredictor(boundary_dir, context_tokens=context_tokens, batch_size=settings.batch_size)
    return CooperativeEngine(models, boundary, settings, provenance, progress)


def _shard_path(work_dir: Path, index: int) -> Path:
    return work_dir / f"shard-{index:05d}.parquet"


def _shard_done(work_dir: Path, index: int, shard: list[tuple[str, str]], keys: dict[str, str]) -> bool:
    """The shard was written by an earlier run of this plan: it holds exactly its prompts, with their keys.
    (The plan can change between a kill and the rerun when the artifact it carries rows over from does.)"""
    path = _shard_path(work_dir, index)
    if not path.exists():
        return False
    try:
        written = pq.read_table(path, columns=["prompt_id", "trace_key"]).to_pylist()
    except (OSError, pa.ArrowException):
        return False
    return [(r["prompt_id"], r["trace_key"]) for r in written] == [(pid, keys[pid]) for pid, _ in shard]


def _write_shard(rows: list[dict], work_dir: Path, index: int) -> None:
    rows.sort(key=lambda r: r["prompt_id"])
    final = _shard_path(work_dir, index)
    partial = final.with_name(final.name + ".partial")
    write_table(pa.Table.from_pylist(rows, schema=schemas.TRACES), partial, schemas.TRACES)
    os.replace(partial, final)  # atomic: a shard is either whole or absent


def trace_metrics(rows: list[dict], verified: bool = False) -> dict:
    """The arm's numbers for its metadata. Correctness counts the traces whose prompt has tests
    (`judged_traces`); the pass rates are left out when there are none. With verification (`verified`):
    `verified_pass_rate`, the prompts with tests that ended with a passing sample, and `samples_drawn`."""
    n = len(rows)
    total = sum(r["n_tokens_total"] for r in rows)
    metrics = {
        "traces": n,
        "mean_tokens": total / n if n else 0.0,
        "teacher_token_share": sum(r["n_tokens_teacher"] for r in rows) / total if total else 0.0,
        "mean_switches": sum(r["n_switches"] for r in rows) / n if n else 0.0,
        "rollback_tokens": sum(r["rollback_tokens"] for r in rows),
        "answers_truncated": sum(r["answer_finish_reason"] == "length" for r in rows),
    }
    for reason in sorted({r["ended"] for r in rows}):
        metrics[f"ended_{reason}"] = sum(r["ended"] == reason for r in rows)
    answers = [r["answer_passed"] for r in rows if r.get("answer_passed") is not None]
    thinking = [r["thinking_passed"] for r in rows if r.get("thinking_passed") is not None]
    metrics["judged_traces"] = len(answers)
    if answers:
        metrics["answer_pass_rate"] = sum(answers) / len(answers)
    if thinking:
        metrics["thinking_pass_rate"] = sum(thinking) / len(thinking)
    if verified:
        metrics["samples_drawn"] = sum(r.get("sample") or 1 for r in rows)
        if answers:
            metrics["verified_pass_rate"] = sum(answers) / len(answers)
    return metrics
