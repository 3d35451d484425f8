"""Cooperative traces judged against their prompt's tests: the thinking's final code and the answer, in the
sandbox (real subprocesses)."""

import json

from tessy_dagster.corpus.correctness import judge_traces, thinking_final_code
from tessy_dagster.corpus.correctness import tests_kind as kind_of  # a test* name would be collected
from tessy_dagster.evaluate.benchmarks import toy_tests

TOY = toy_tests("f", [1, 2, -3], [4, 5, 0])  # f(x) = x + 3
RIGHT = "def f(x):\n    return (x + 3)"
WRONG = "def f(x):\n    return (x + 4)"
HUMANEVAL = json.dumps({"prompt": "def add(a, b):\n    \"\"\"The sum of a and b.\"\"\"\n",
                        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"
                                "    assert candidate(-1, 1) == 0\n",
                        "entry_point": "add", "timeout_s": 3.0})
LCB = json.dumps({"mode": "stdin", "fn_name": None, "timeout_s": 6,
                  "cases": [{"input": "2\n", "output": "4\n"}, {"input": "5\n", "output": "10\n"}]})


def _trace(prompt_id, thinking, answer):
    return {"prompt_id": prompt_id, "thinking": thinking, "answer": answer}


def _toy_thinking(expr):
    return f"so Step 1 adds 3: (x + 3).\nwell Code: return {expr}"


def test_tests_kind_comes_from_the_keys():
    assert kind_of(TOY) == "toy"
    assert kind_of(HUMANEVAL) == "humaneval"
    assert kind_of(LCB) == "livecodebench"
    assert kind_of(json.dumps({"answer": "4"})) == "final_answer"
    assert kind_of(json.dumps({"mode": "functional", "cases": [], "timeout_s": 6})) is None  # no fn_name
    for unknown in ("", "   ", None, "not json", "[1, 2]", json.dumps({"inputs": [1], "outputs": [2]})):
        assert kind_of(unknown) is None


def test_thinking_final_code_rule():
    # the toy world's last line, made a function of x
    assert thinking_final_code(_toy_thinking("(x + 3)"), "toy", TOY) == "def f(x):\n    return (x + 3)\n"
    # the last Python (or untagged) fenced block wins over lines and over output blocks after it
    thinking = ("```python\ndef f(x):\n    return 1\n```\nCode: return 2\n```\ndef f(x):\n    return x\n```\n"
                "It prints:\n```text\n5\n```\n")
    assert thinking_final_code(thinking, "toy", TOY) == "def f(x):\n    return x\n"
    # humaneval: the return line is a body for the problem's own signature
    assert thinking_final_code("I think\n    return a + b\nthat's it", "humaneval", HUMANEVAL) == "    return a + b\n"
    # no code at all, and no line rule for whole programs
    assert thinking_final_code("hmm, let me think about it", "toy", TOY) is None
    assert thinking_final_code("Code: return 3", "livecodebench", LCB) is None


def test_judge_traces_verdicts():
    rows = [
        _trace("right", _toy_thinking("(x + 3)"), RIGHT),
        _trace("wrong", _toy_thinking("(x + 4)"), WRONG),
        _trace("no_code", "hmm, I am not sure", ""),
        _trace("thinking_only", _toy_thinking("(x + 3)"), WRONG),
        _trace("unknown", _toy_thinking("(x + 3)"), RIGHT),
        _trace("no_tests", _toy_thinking("(x + 3)"), RIGHT),
        _trace("humaneval", "The sum:\nreturn a + b", "```python\ndef add(a, b):\n    return a - b\n```"),
        _trace("lcb", "Read n, double it:\n```python\nprint(int(input()) * 2)\n```\nDone.",
               "```python\nprint(int(input()) * 2)\n```"),
        _trace("math", "so the total is \\boxed{4}", "The answer is \\boxed{5}."),
    ]
    tests = {"right": TOY, "wrong": TOY, "no_code": TOY, "thinking_only": TOY,
             "unknown": json.dumps({"inputs": [1], "outputs": [4]}), "no_tests": "",
             "humaneval": HUMANEVAL, "lcb": LCB, "math": json.dumps({"answer": "4"})}
    got = {r["prompt_id"]: v for r, v in zip(rows, judge_traces(rows, tests, workers=2))}

    assert got["right"] == {"thinking_passed": True, "answer_passed": True, "answer_status": "passed",
                            "thinking_status": "passed"}
    assert got["wrong"]["thinking_passed"] is False and got["wrong"]["answer_passed"] is False
    assert got["wrong"]["answer_status"] == "failed"
    assert got["no_code"]["thinking_passed"] is False and got["no_code"]["thinking_status"] == "no_code"
    assert got["no_code"]["answer_passed"] is False and got["no_code"]["answer_status"] == "no_code"
    assert got["thinking_only"]["thinking_passed"] is True and got["thinking_only"]["answer_passed"] is False
    for unjudged in ("unknown", "no_tests"):
        assert got[unjudged] == {"thinking_passed": None, "answer_passed": None, "answer_status": None,
                                 "thinking_status": None}
    assert got["humaneval"]["thinking_passed"] is True and got["humaneval"]["answer_status"] == "failed"
    assert got["lcb"]["thinking_passed"] is True and got["lcb"]["answer_passed"] is True
    assert got["math"]["thinking_passed"] is True and got["math"]["answer_passed"] is False


def test_malformed_tests_of_a_known_kind_leave_only_their_row_unjudged():
    rows = [_trace("bad", _toy_thinking("(x + 3)"), RIGHT), _trace("good", _toy_thinking("(x + 3)"), RIGHT)]
    bad = json.dumps({"function_name": "f", "cases": [[1, 2, 3]]})
    got = judge_traces(rows, {"bad": bad, "good": TOY})
    assert got[0]["answer_passed"] is None and got[0]["thinking_passed"] is None
    assert got[1]["answer_passed"] is True and got[1]["thinking_passed"] is True


def test_no_rows():
    assert judge_traces([], {}) == []


def test_a_sandbox_error_is_no_verdict(monkeypatch):
    from tessy_dagster.corpus import correctness
    from tessy_dagster.evaluate.benchmarks import Verdict

    broken = Verdict(False, "sandbox_error", "unshare failed", 0, 3)
    monkeypatch.setattr(correctness, "judge_many", lambda pairs, limits, workers: [broken] * len(pairs))
    got = judge_traces([_trace("right", _toy_thinking("(x + 3)"), RIGHT)], {"right": TOY})
    assert got == [{"thinking_passed": None, "answer_passed": None, "answer_status": "sandbox_error",
                    "thinking_status": "sandbox_error"}]
