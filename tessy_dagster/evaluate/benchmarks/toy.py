"""The toy world's held-out problems: the judge only (the toy world writes the rows; the engine never
imports it, so the function name comes from the row).

tests JSON: {"function_name": "f", "cases": [[x, y], ...]} (ints: f(x) must return y).
"""

from __future__ import annotations

import json

from ..function_tests import SandboxResult, run_tests
from ..sandbox import SandboxLimits
from .common import extract_fenced_code, verdict, Verdict


def toy_tests(function_name: str, inputs: list[int], outputs: list[int]) -> str:
    """The `tests` JSON of a toy row (for the toy world, which builds its rows)."""
    return json.dumps({"function_name": function_name, "cases": [[int(x), int(y)] for x, y in zip(inputs, outputs)]})


def from_sandbox(result: SandboxResult) -> Verdict:
    # run_tests's statuses are verdict statuses already
    return verdict(result.status, result.detail, result.n_passed, result.n_tests)


def judge_toy(tests: dict, answer: str, limits: SandboxLimits) -> Verdict:
    code = extract_fenced_code(answer)
    cases = [(int(x), int(y)) for x, y in tests["cases"]]
    if not code.strip():
        return verdict("no_code", "empty answer", 0, len(cases))
    return from_sandbox(run_tests(code, tests["function_name"], cases, limits))
