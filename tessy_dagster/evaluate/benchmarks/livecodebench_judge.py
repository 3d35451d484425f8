"""LiveCodeBench's judge: the code of an answer run on a problem's cases in the sandbox, by the
reference's rules (the rows come from livecodebench.py, which loads them).

The reference is LiveCodeBench's own code (nvidia-livecodebench 26.3: evaluation/testing_util.py,
utils/extraction_utils.py). What carries over:
- The code is the text between the last two lines that contain ``` (none: no code).
- A problem is functional when its metadata has func_name: the code, after an import prelude, is exec'd
  as a module; `Solution()` is made once if the code contains "class Solution"; each case calls the
  method with the case's input lines, one JSON value each, as arguments; a tuple result becomes a list;
  it must == the JSON output. Otherwise stdin: the top-level statements (imports hoisted, a final
  `if __name__ == '__main__':` unwrapped) become the body of a function, run once per case with
  sys.stdin a StringIO of the input and sys.stdout captured; SystemExit ends it normally. Outputs match
  when, both stripped and split into stripped lines, the line counts agree and every line is equal
  exactly or as a list of Decimals of its whitespace-separated tokens.
- The first failing case ends the judging; the row's timeout_s per case (the loader's 6 s, codegen_metrics'
  default), on a timer in the process; the whole functional run gets the reference's global limit,
  (timeout + 1) * cases + 5 s.
What does not carry over:
- The reference runs in-process with numpy and the rest of its environment importable; our sandbox has
  the standard library only. Its reliability_guard (quit, os.kill, subprocess.Popen... set to None) is
  not reproduced: the sandbox isolates instead.
- It runs all cases in one process; we run each stdin case in its own sandbox run (state left by one
  case never reaches the next: only code whose answers depend on earlier cases can tell).
- A functional result travels to the parent as tagged JSON and is compared there, so only values built
  from None/bool/int/float/str/list/tuple/dict (and their subclasses, read as the base type) can equal
  the expected output; the reference would call a custom object's own __eq__.
"""

from __future__ import annotations

import json
from decimal import Decimal

from ..sandbox import SandboxLimits, run_python
from .common import new_nonce, payload, program_failure, reports, run_limits, verdict, Verdict


def extract_code(answer: str) -> str:
    """extraction_utils.extract_code (the chat styles): the lines between the last two ``` lines."""
    lines = answer.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1: fences[-1]])


# testing_util.import_string: what every candidate gets before its own code
PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)

# Shared by both drivers: setup as in the reference's worker process, and its timer.
_DRIVER_HEAD = r'''
import ast, io, json, os, sys, types
import _signal

class TimeoutException(Exception):
    pass

def _alarm(signum, frame):
    raise TimeoutException("alarm went off")

def _describe(exc):
    try:
        return ("%s: %s" % (type(exc).__name__, exc))[:300]
    except BaseException:
        return type(exc).__name__

def _setup():
    data = json.loads(sys.stdin.buffer.read())
    out_fd = os.dup(1)
    write, dumps = os.write, json.dumps
    nonce = data["nonce"]
    def report(obj):
        write(out_fd, (nonce + " " + dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))
    # the reference's worker is a multiprocessing child: its stdin is /dev/null
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)
    sys.set_int_max_str_digits(50000)  # compute_code_generation_metrics sets it in the reference process
    _signal.signal(_signal.SIGALRM, _alarm)
    return data, report

def _timer(seconds):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)

def _load(code, timeout, report):
    # compile_code: exec as module "tmp_sol" under the timer
    module = types.ModuleType("tmp_sol", "")
    try:
        _timer(timeout)
        try:
            exec(code, module.__dict__)
        finally:
            _timer(0)
    except TimeoutException:
        report({"outcome": "timeout", "detail": "timed out defining the code"})
        return None
    except BaseException as exc:
        report({"outcome": "error", "detail": "while defining: " + _describe(exc)})
        return None
    return module
'''

_STDIN_DRIVER = _DRIVER_HEAD + r'''
def _as_function(code, prelude):
    # clean_if_name: a final `if __name__ == '__main__':` is replaced by its body (the module is not
    # __main__ in the reference)
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except BaseException:
        pass
    # make_function: top-level imports stay in the module, everything else becomes wrapped_function's body
    # (so `global x` inside a def no longer sees a top-level x, as in the reference)
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        func = ast.FunctionDef(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                               kw_defaults=[], defaults=[]), body=body, decorator_list=[], lineno=-1)
        return prelude + "\n" + ast.unparse(imports) + "\n" + ast.unparse(func)
    except BaseException:
        return code  # as the reference: unchanged, without the prelude

def _main():
    data, report = _setup()
    module = _load(_as_function(data["code"], data["prelude"]), data["timeout"], report)
    if module is None:
        return
    method = getattr(module, "wrapped_function", None)
    if method is None:
        report({"outcome": "error", "detail": "the code does not compile to a program"})
        return
    text = data["input"]
    lines = iter(text.split("\n"))
    # call_method's patches: the stdin object bound before the call (by `from sys import stdin`) answers
    # read/readline/readlines from the input (readline without its newline); sys.stdin is a StringIO
    # of the input during the call
    real = sys.stdin
    real.readline = lambda *args: next(lines)
    real.readlines = lambda *args: text.split("\n")
    real.read = lambda *args: text
    sys.stdin = io.StringIO(text)
    captured = io.StringIO()
    sys.stdout = captured
    outcome = {"outcome": "done"}
    try:
        _timer(data["timeout"])
        try:
            method()
        except SystemExit:
            pass
        finally:
            _timer(0)
    except TimeoutException:
        outcome = {"outcome": "timeout", "detail": "over the per-test time limit"}
    except BaseException as exc:
        outcome = {"outcome": "error", "detail": _describe(exc)}
    sys.stdout = sys.__stdout__
    if outcome["outcome"] == "done":
        outcome["stdout"] = captured.getvalue()
    report(outcome)

_main()
os._exit(0)
'''

_FUNCTIONAL_DRIVER = _DRIVER_HEAD + r'''
def _encode(value, depth=0):
    # Tagged JSON so the parent rebuilds the value with its types (a tuple stays a tuple, a float
    # exactly); subclasses are read through their base type, anything else becomes opaque (== nothing).
    if depth > 200:
        raise RecursionError("nested too deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"i": int.__format__(int.__int__(value), "x")}
    if isinstance(value, float):
        return {"f": float.__repr__(value)}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return {"l": [_encode(v, depth + 1) for v in list.__iter__(value)]}
    if isinstance(value, tuple):
        return {"t": [_encode(v, depth + 1) for v in tuple.__iter__(value)]}
    if isinstance(value, dict):
        return {"d": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in dict.items(value)]}
    try:
        shown = repr(value)[:100]
    except BaseException:
        shown = "?"
    return {"o": type(value).__name__ + " " + shown}

def _main():
    data, report = _setup()
    # grade_call_based: the prelude, then the code as a module
    code = data["prelude"] + "\n\n" + data["code"]
    module = _load(code, data["timeout"], report)
    if module is None:
        return
    try:
        target = module.Solution() if "class Solution" in code else module
        method = getattr(target, data["fn_name"])
    except BaseException as exc:
        report({"outcome": "no_function", "detail": _describe(exc)})
        return
    # the program's own prints are not part of the answer
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    for i, text in enumerate(data["inputs"]):
        args = [json.loads(line) for line in text.split("\n")]
        try:
            _timer(data["timeout"])
            try:
                value = method(*args)
            finally:
                _timer(0)
        except TimeoutException:
            report({"outcome": "timeout", "case": i, "detail": "over the per-test time limit"})
            return
        except BaseException as exc:
            report({"outcome": "error", "case": i, "detail": _describe(exc)})
            return
        try:
            encoded = _encode(value)
        except BaseException:
            encoded = {"o": "unencodable " + type(value).__name__}
        report({"outcome": "value", "case": i, "value": encoded})  # one line per case: a crash keeps these
    report({"outcome": "done"})

_main()
os._exit(0)
'''


def outputs_match(prediction: str, expected: str) -> bool:
    """grade_stdio's comparison: stripped lines, equal exactly or as Decimals token by token."""
    got = [line.strip() for line in prediction.strip().split("\n")]
    want = [line.strip() for line in expected.strip().split("\n")]
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g == w:
            continue
        try:
            if [Decimal(t) for t in g.split()] != [Decimal(t) for t in w.split()]:
                return False
        except Exception:  # not numbers (or a signalling NaN): the reference fails the case
            return False
    return True


class _Opaque:
    """A value that was neither JSON-like nor a subclass of one: equal to nothing."""
    __slots__ = ("shown",)

    def __init__(self, shown):
        self.shown = shown

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self.shown}>"


def decode_value(x, depth: int = 0):
    if depth > 250:
        raise ValueError("nested too deep")
    if x is None or isinstance(x, (bool, str, int, float)):
        return x
    if isinstance(x, dict) and len(x) == 1:
        (tag, v), = x.items()
        if tag == "i":
            return int(v, 16)
        if tag == "f":
            return float(v)
        if tag == "l":
            return [decode_value(e, depth + 1) for e in v]
        if tag == "t":
            return tuple(decode_value(e, depth + 1) for e in v)
        if tag == "d":
            return {decode_value(k, depth + 1): decode_value(e, depth + 1) for k, e in v}
        if tag == "o":
            return _Opaque(str(v))
    raise ValueError(f"malformed value {str(x)[:50]}")


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _judge_stdin(tests: dict, code: str, limits: SandboxLimits) -> Verdict:
    cases, timeout = tests["cases"], float(tests["timeout_s"])
    n = len(cases)
    longest = max(len(c["output"].encode("utf-8")) for c in cases)
    # the timer covers defining the code, then the run; +1 s for the interpreter to start
    run = run_limits(limits, 2 * timeout + 1.0, output_bytes=2 * longest + (64 << 10))
    for i, case in enumerate(cases):
        nonce = new_nonce()
        result = run_python(_STDIN_DRIVER, payload(nonce, code=code, input=case["input"], timeout=timeout,
                                                   prelude=PRELUDE), run)
        lines = reports(result, nonce)
        if not lines:
            status, detail = program_failure(result)
            return verdict(status, f"case {i}: {detail}", i, n)
        last = lines[-1]
        if last.get("outcome") != "done":
            status = "timeout" if last.get("outcome") == "timeout" else "error"
            return verdict(status, f"case {i}: {last.get('detail', '')}", i, n)
        got = str(last.get("stdout", ""))
        if not outputs_match(got, case["output"]):
            return verdict("failed", f"case {i}: wrong answer: got {_shown(got.strip())}, "
                                     f"expected {_shown(case['output'].strip())}", i, n)
    return verdict("passed", f"all {n} cases passed", n, n)


def _judge_functional(tests: dict, code: str, limits: SandboxLimits) -> Verdict:
    cases, timeout = tests["cases"], float(tests["timeout_s"])
    n = len(cases)
    nonce = new_nonce()
    size = sum(len(c["output"]) for c in cases)
    run = run_limits(limits, (timeout + 1) * n + 5, output_bytes=4 * size + (64 << 10))  # the reference's global limit
    result = run_python(_FUNCTIONAL_DRIVER, payload(nonce, code=code, fn_name=tests["fn_name"], timeout=timeout,
                                                    inputs=[c["input"] for c in cases], prelude=PRELUDE), run)
    lines = reports(result, nonce)
    # compare in case order; the first wrong value decides, even if a later case crashed the run
    for i, case in enumerate(cases):
        line = lines[i] if i < len(lines) else None
        if line is None:
            status, detail = program_failure(result)
            return verdict(status, f"case {i}: {detail}", i, n)
        outcome = line.get("outcome")
        if outcome != "value" or line.get("case") != i:
            status = {"timeout": "timeout", "error": "error", "no_function": "no_function"}.get(outcome, "crashed")
            return verdict(status, (f"case {i}: " if "case" in line else "") + str(line.get("detail", outcome)), i, n)
        try:
            value = decode_value(line.get("value"))
            if isinstance(value, tuple):  # the reference: "don't penalize tuples instead of lists"
                value = list(value)
            ok = value == json.loads(case["output"])
        except (ValueError, TypeError, RecursionError):
            ok, value = False, "<malformed>"
        if not ok:
            return verdict("failed", f"case {i}: wrong answer: got {_shown(repr(value))}, "
                                     f"expected {_shown(case['output'])}", i, n)
    return verdict("passed", f"all {n} cases passed", n, n)


def judge_livecodebench(tests: dict, answer: str, limits: SandboxLimits) -> Verdict:
    code = extract_code(answer)
    n = len(tests["cases"])
    if not code.strip():
        return verdict("no_code", "no code between two ``` lines", 0, n)
    if tests["mode"] == "functional":
        return _judge_functional(tests, code, limits)
    return _judge_stdin(tests, code, limits)
