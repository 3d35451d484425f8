"""The toy world's tables: task prompts (training split) and the benchmark (held-out split)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from .. import schemas
from ..settings import ToyWorldSettings
from ..storage import write_table
from . import tasks


def problems_table(problems: list[tasks.Problem]) -> pa.Table:
    return pa.Table.from_pylist([
        {"problem_id": p.problem_id, "prompt": p.prompt, "n_steps": p.n_steps,
         "steps": json.dumps([list(s) for s in p.steps]),
         "test_inputs": [x for x, _ in p.tests], "test_outputs": [y for _, y in p.tests]}
        for p in problems
    ], schema=schemas.PROBLEMS)


def _step_counts(problems) -> dict:
    return {f"problems_{n}_step": sum(p.n_steps == n for p in problems) for n in (1, 2, 3)}


def write_prompts(settings: ToyWorldSettings, out_dir: str | Path) -> dict:
    """Task prompts for the cooperative stage: an even mix of 1- to 3-step training-split problems."""
    problems = tasks.generate_problems(settings.n_prompts, (1 / 3, 1 / 3, 1 / 3), settings.seed, settings.n_tests,
                                       settings.test_range, "prompts")
    write_table(problems_table(problems), Path(out_dir) / "prompts.parquet", schemas.PROBLEMS)
    return {"problems": len(problems), **_step_counts(problems)}


def training_signatures(settings: ToyWorldSettings) -> set[str]:
    """Signatures the models and the prompts may have seen, kept out of the benchmark where possible."""
    seen = set()
    for role, mix in (("teacher", settings.teacher_step_mix), ("student", settings.student_step_mix)):
        seen |= {tasks.signature(p.steps) for p in tasks.generate_problems(
            settings.n_train_problems, mix, settings.seed, settings.n_tests, settings.test_range, f"train-{role}")}
    seen |= {tasks.signature(p.steps) for p in tasks.generate_problems(
        settings.n_prompts, (1 / 3, 1 / 3, 1 / 3), settings.seed, settings.n_tests, settings.test_range, "prompts")}
    return seen


def write_benchmark(settings: ToyWorldSettings, out_dir: str | Path) -> dict:
    seen = training_signatures(settings)
    problems = tasks.heldout_problems(settings.n_heldout_per_steps, settings.seed, settings.n_tests,
                                      settings.test_range, seen)
    write_table(problems_table(problems), Path(out_dir) / "problems.parquet", schemas.PROBLEMS)
    unseen = sum(tasks.signature(p.steps) not in seen for p in problems)
    return {"problems": len(problems), "unseen_in_training": unseen, **_step_counts(problems)}
