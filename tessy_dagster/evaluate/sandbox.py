"""Run untrusted, model-generated Python functions against hidden tests.

Each program runs in its own short-lived child interpreter with resource
limits, no network, a throw-away working directory and a minimal
environment. The child only ever sees the test *inputs*; the parent keeps
the expected outputs and does the comparison, so a program cannot read the
answers out of the runner or fake an ``==``.

This is a best-effort sandbox for scoring benchmark code, not a security
boundary against a determined attacker: code that deliberately introspects
the runner (e.g. walks its stack frames) can still find the nonce, and the
child runs as the same user as the parent.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

__all__ = ["SandboxLimits", "SandboxResult", "run_tests", "run_many"]

STATUSES = ("passed", "failed", "error", "timeout", "no_function", "memory", "crashed")

_CLONE_NEWNET = 0x40000000
_MAX_FILE_BYTES = 1024 * 1024  # RLIMIT_FSIZE: files the program writes, and our result file
_MAX_OPEN_FILES = 32
_MAX_DETAIL = 200


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 2.0  # wall-clock per program
    memory_mb: int = 256  # RLIMIT_AS of the child
    cpu_s: int = 2  # RLIMIT_CPU of the child


@dataclass(frozen=True)
class SandboxResult:
    status: str  # one of STATUSES
    n_passed: int  # tests passed
    n_tests: int
    detail: str  # short human-readable reason, at most 200 chars

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# The child-side runner, passed with ``-c``. It reads {nonce, code,
# function_name, inputs} from stdin and writes exactly one line
# "<nonce> <json>" to the result fd as its very last action.
_RUNNER = r'''
import builtins, json, os, socket, sys


def _no_network(*args, **kwargs):
    raise OSError("network disabled in sandbox")


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
    # Keep a private handle on the result file, then send fds 1 and 2 to
    # /dev/null so the program's own output never reaches the parent.
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # Second network layer, for when unshare(CLONE_NEWNET) was not permitted.
    socket.socket = _no_network
    socket.create_connection = _no_network
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


def _load_libc():
    # Loaded once in the parent: dlopen in a forked child of a threaded
    # process could deadlock.
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _limit_child(limits: SandboxLimits) -> None:
    """preexec_fn: runs in the child between fork and exec."""
    os.setsid()  # own process group, so a timeout can kill everything it spawned
    if _LIBC is not None:
        try:
            _LIBC.unshare(_CLONE_NEWNET)  # empty network namespace; failure is fine
        except Exception:
            pass
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Soft limit sends SIGXCPU; the hard limit (1 s later) SIGKILLs if it is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (_MAX_OPEN_FILES, _MAX_OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files from SIGXCPU etc.


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


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
    if not isinstance(limits, SandboxLimits):
        raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    if not (limits.timeout_s > 0 and limits.memory_mb > 0 and limits.cpu_s > 0):
        raise ValueError(f"limits must all be positive, got {limits}")


def _kill_group(pid: int) -> None:
    # Also reaches grandchildren the program spawned (unless they left the group).
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_result(output: bytes, nonce: str):
    """The runner's result dict, or None if there is no valid nonce line."""
    prefix = nonce.encode("ascii") + b" "
    for line in reversed(output.splitlines()):
        if line.startswith(prefix):
            try:
                result = json.loads(line[len(prefix) :])
            except ValueError:
                return None
            return result if isinstance(result, dict) else None
    return None


def _abnormal_exit(returncode: int, limits: SandboxLimits) -> tuple[str, str]:
    """(status, detail) for a child that exited without a result line."""
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return ("timeout", f"exceeded the CPU limit of {limits.cpu_s}s")
        if sig == signal.SIGXFSZ:
            return ("crashed", f"wrote more than the {_MAX_FILE_BYTES} byte file limit")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return ("crashed", f"killed by {name}")
    return ("crashed", f"exited with code {returncode} without reporting a result")


def _score(result: dict, tests: list) -> tuple[str, int, str]:
    """Turn the runner's report into (status, n_passed, detail); compares in the parent."""
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
    """Define ``function_name`` from ``code`` in a sandboxed child and check it on ``tests``.

    Raises ValueError only for bad arguments; whatever the program does ends up
    in the returned SandboxResult.
    """
    _validate(code, function_name, tests, limits)
    nonce = secrets.token_hex(16)
    payload = json.dumps(
        {"nonce": nonce, "code": code, "function_name": function_name, "inputs": [x for x, _ in tests]}
    ).encode("ascii")
    # PYTHONHASHSEED has no effect on the -I child itself (-I implies -E); it
    # only matters for non-isolated Pythons the program might start.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"}

    # The result goes to an unlinked temp file rather than a pipe: RLIMIT_FSIZE
    # then caps how much the child can make us read.
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RUNNER],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            close_fds=True,
            preexec_fn=lambda: _limit_child(limits),
        )
        timed_out = False
        try:
            proc.communicate(payload, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)
            proc.wait()  # reap: no zombies
        out.seek(0)
        output = out.read(2 * _MAX_FILE_BYTES)

    n_tests = len(tests)
    if timed_out:
        return SandboxResult("timeout", 0, n_tests, f"exceeded the wall-clock limit of {limits.timeout_s}s")
    result = _read_result(output, nonce)
    if result is None:
        status, detail = _abnormal_exit(proc.returncode, limits)
        return SandboxResult(status, 0, n_tests, _short(detail))
    status, n_passed, detail = _score(result, tests)
    return SandboxResult(status, n_passed, n_tests, _short(detail))


def run_many(
    jobs: list[tuple[str, str, list[tuple[int, int]]]],
    limits: SandboxLimits = SandboxLimits(),
    workers: int = 2,
) -> list[SandboxResult]:
    """run_tests for each (code, function_name, tests) job; results in job order."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not isinstance(jobs, list):
        raise ValueError("jobs must be a list of (code, function_name, tests) triples")
    for i, job in enumerate(jobs):
        if not (isinstance(job, (tuple, list)) and len(job) == 3):
            raise ValueError(f"jobs[{i}] must be a (code, function_name, tests) triple")
        _validate(*job, limits)  # fail fast, before any subprocess starts
    # Threads are enough: the work happens in the child processes.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_tests(*job, limits=limits), jobs))
