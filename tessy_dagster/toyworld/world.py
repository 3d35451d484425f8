"""The toy world's rows: task prompts (training split) and the benchmark (held-out split), in the same tables
a team's prompts file and benchmark suites are normalized into."""

from __future__ import annotations

from ..evaluate.benchmarks.toy import toy_tests
from ..settings import ToyWorldSettings
from . import tasks


def prompt_problems(settings: ToyWorldSettings) -> list[tasks.Problem]:
    """Task prompts for the cooperative stage: 1- to 3-step training-split problems in `prompt_step_mix`."""
    return tasks.generate_problems(settings.n_prompts, settings.prompt_step_mix, settings.seed, settings.n_tests,
                                   settings.test_range, "prompts")


def _tests_json(problem: tasks.Problem) -> str:
    return toy_tests(tasks.FUNCTION_NAME, [x for x, _ in problem.tests], [y for _, y in problem.tests])


def prompt_rows(settings: ToyWorldSettings) -> list[dict]:
    """The task prompts as rows of the prompts table, as a team's prompts file is normalized."""
    return [{"problem_id": p.problem_id, "prompt": p.prompt, "tests": _tests_json(p), "difficulty": f"{p.n_steps}-step",
             "source": "toyworld", "source_file": "toyworld", "source_row": i}
            for i, p in enumerate(prompt_problems(settings))]


def training_signatures(settings: ToyWorldSettings) -> set[str]:
    """Signatures the models and the prompts may have seen, kept out of the benchmark where possible."""
    seen = set()
    for role, mix in (("teacher", settings.teacher_step_mix), ("student", settings.student_step_mix)):
        seen |= {tasks.signature(p.steps) for p in tasks.generate_problems(
            settings.n_train_problems, mix, settings.seed, settings.n_tests, settings.test_range, f"train-{role}")}
    seen |= {tasks.signature(p.steps) for p in prompt_problems(settings)}
    return seen


def benchmark_problems(settings: ToyWorldSettings) -> list[tasks.Problem]:
    seen = training_signatures(settings)
    return tasks.heldout_problems(settings.n_heldout_per_steps, settings.seed, settings.n_tests, settings.test_range,
                                  seen)


def benchmark_rows(settings: ToyWorldSettings, suite: str = "toy") -> list[dict]:
    """The held-out problems as rows of the benchmark table (schemas.BENCHMARK_PROBLEMS): the step count is
    the difficulty bucket, the hidden tests call `f` on integers."""
    return [{"problem_id": p.problem_id, "suite": suite, "kind": "toy", "prompt": p.prompt,
             "tests": _tests_json(p),
             "difficulty": f"{p.n_steps}-step", "release_date": "", "source_file": "toyworld", "source_row": i}
            for i, p in enumerate(benchmark_problems(settings))]
