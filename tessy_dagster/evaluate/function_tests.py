"""Call a one-argument function on integer tests, in the sandbox: the toy benchmark's judge.

``run_tests(code, function_name, tests, limits)`` defines ``function_name`` from ``code`` and checks it on
``(input, expected)`` int pairs, returning a ``SandboxResult`` (one of ``STATUSES``); ``run_many`` does
that for many jobs. It is built on ``sandbox.run_python``, which does all the isolating: a small constant
driver program defines the function, calls it on the test inputs and prints one nonce-tagged JSON line;
the expected outputs never leave the parent, which does the comparison. Code that introspects the
driver's frames can find the nonce and print a fake result line, but it would still have to produce the
expected outputs, which only the parent holds.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .sandbox import SandboxLimits, run_python
from .sandbox import _check_limits, _check_workers, _short  # the same argument checks and detail cut

__all__ = ["SandboxResult", "STATUSES", "run_tests", "run_many"]

STATUSES = ("passed", "failed", "error", "timeout", "no_function", "memory", "crashed", "sandbox_error")


@dataclass(frozen=True)
class SandboxResult:
    status: str  # one of STATUSES
    n_passed: int  # tests passed
    n_tests: int
    detail: str  # short human-readable reason, at most 200 chars

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# The toy benchmark's driver, a whole program for run_python. It reads {nonce, code,
# function_name, inputs} from stdin and writes exactly one line "<nonce> <json>" to stdout
# as its very last action; the program's own prints go to /dev/null.
_DRIVER = r'''
import builtins, json, os, sys


def _describe(exc):
    # str() of an untrusted exception may itself misbehave.
    try:
        text = "%s: %s" % (type(exc).__name__, exc)
    except BaseException:
        text = type(exc).__name__
    return text[:200]


def _encode(value):
    # Only exact ints are sent back as numbers; anything else (bool, float,
    # int subclasses with a rigged __eq__) becomes a repr and fails the test.
    if type(value) is int:
        try:
            int.__repr__(value)  # > 4300 digits cannot be serialised
            return value
        except ValueError:
            return {"repr": "<int with too many digits>"}
    try:
        text = repr(value)
    except BaseException:
        text = "<unrepresentable %s>" % type(value).__name__
    return {"repr": text[:100]}


def _run(code, function_name, inputs):
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        exec(compile(code, "<solution>", "exec"), namespace)
    except MemoryError:
        return {"outcome": "memory", "detail": "MemoryError while defining the function"}
    except BaseException as exc:  # includes SystemExit from sys.exit()
        return {"outcome": "error", "detail": "while defining: " + _describe(exc)}
    func = namespace.get(function_name)
    if not callable(func):
        return {"outcome": "no_function", "detail": "%s is not defined" % function_name}
    got = []
    for x in inputs:
        try:
            got.append(_encode(func(x)))
        except MemoryError:
            # The heap may be in a bad state: stop here.
            return {"outcome": "memory", "got": got, "detail": "MemoryError on input %r" % x}
        except BaseException as exc:
            got.append({"raised": _describe(exc)})
    return {"outcome": "done", "got": got}


def _main():
    payload = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    nonce = payload.pop("nonce")
    # Keep a private handle on stdout, then send fds 1 and 2 to /dev/null so
    # the program's own output never reaches the parent.
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # Bind what we need afterwards before the program can monkeypatch it.
    write, dumps, exit_now = os.write, json.dumps, os._exit
    result = _run(payload["code"], payload["function_name"], payload["inputs"])
    try:
        line = nonce + " " + dumps(result) + "\n"
    except BaseException:
        line = nonce + ' {"outcome": "error", "detail": "unserialisable result"}\n'
    write(result_fd, line.encode("ascii"))
    exit_now(0)  # skip atexit handlers / finalisers the program may have set up


_main()
'''


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(code, function_name, tests, limits) -> None:
    if not isinstance(code, str):
        raise ValueError(f"code must be a str, got {type(code).__name__}")
    if not isinstance(function_name, str) or not function_name.isidentifier():
        raise ValueError(f"function_name must be a non-empty identifier, got {function_name!r}")
    if not isinstance(tests, list) or not tests:
        raise ValueError("tests must be a non-empty list of (input, expected) int pairs")
    for i, test in enumerate(tests):
        if not (isinstance(test, (tuple, list)) and len(test) == 2 and all(map(_is_int, test))):
            raise ValueError(f"tests[{i}] must be an (input, expected) pair of ints, got {test!r}")
    _check_limits(limits)


def _read_result(output: bytes, nonce: str):
    """The driver's result dict, or None if there is no valid nonce line."""
    prefix = nonce.encode("ascii") + b" "
    for line in reversed(output.splitlines()):
        if line.startswith(prefix):
            try:
                result = json.loads(line[len(prefix):])
            except ValueError:
                return None
            return result if isinstance(result, dict) else None
    return None


def _score(result: dict, tests: list) -> tuple[str, int, str]:
    """Turn the driver's report into (status, n_passed, detail); compares in the parent."""
    outcome = result.get("outcome")
    got = result.get("got", [])
    if not isinstance(got, list) or len(got) > len(tests):
        return "crashed", 0, "malformed result from sandbox"
    n_passed = sum(1 for (_, expected), value in zip(tests, got) if _is_int(value) and value == expected)
    if outcome in ("error", "no_function", "memory"):
        return outcome, n_passed, str(result.get("detail", outcome))
    if outcome != "done" or len(got) != len(tests):
        return "crashed", 0, "malformed result from sandbox"
    for (x, _), value in zip(tests, got):
        if isinstance(value, dict) and "raised" in value:
            return "error", n_passed, f"input {x}: {value['raised']}"
    for (x, expected), value in zip(tests, got):
        if not (_is_int(value) and value == expected):
            shown = value["repr"] if isinstance(value, dict) and "repr" in value else repr(value)
            return "failed", n_passed, f"input {x}: expected {expected}, got {shown}"
    return "passed", n_passed, f"all {len(tests)} tests passed"


def run_tests(
    code: str,
    function_name: str,
    tests: list[tuple[int, int]],
    limits: SandboxLimits = SandboxLimits(),
) -> SandboxResult:
    """Define ``function_name`` from ``code`` in the sandbox and check it on ``tests``.

    Raises ValueError only for bad arguments; whatever the program does ends up
    in the returned SandboxResult.
    """
    _validate(code, function_name, tests, limits)
    nonce = secrets.token_hex(16)
    payload = json.dumps(
        {"nonce": nonce, "code": code, "function_name": function_name, "inputs": [x for x, _ in tests]}
    ).encode("ascii")
    run = run_python(_DRIVER, payload, limits)
    n_tests = len(tests)
    if run.status in ("timeout", "sandbox_error"):
        return SandboxResult(run.status, 0, n_tests, run.detail)
    result = _read_result(run.stdout, nonce)
    if result is None:
        if run.status == "memory":
            return SandboxResult("memory", 0, n_tests, run.detail)
        if run.returncode is not None and run.returncode >= 0 and run.status != "crashed":
            detail = f"exited with code {run.returncode} without reporting a result"
        else:
            detail = run.detail
        return SandboxResult("crashed", 0, n_tests, _short(detail))
    status, n_passed, detail = _score(result, tests)
    return SandboxResult(status, n_passed, n_tests, _short(detail))


def run_many(
    jobs: list[tuple[str, str, list[tuple[int, int]]]],
    limits: SandboxLimits = SandboxLimits(),
    workers: int = 2,
) -> list[SandboxResult]:
    """run_tests for each (code, function_name, tests) job; results in job order."""
    _check_workers(workers)
    if not isinstance(jobs, list):
        raise ValueError("jobs must be a list of (code, function_name, tests) triples")
    for i, job in enumerate(jobs):
        if not (isinstance(job, (tuple, list)) and len(job) == 3):
            raise ValueError(f"jobs[{i}] must be a (code, function_name, tests) triple")
        _validate(*job, limits)  # fail fast, before any subprocess starts
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_tests(*job, limits=limits), jobs))
