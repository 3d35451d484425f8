"""Tests for function_tests: the toy benchmark's verdicts on one-argument int functions, run in the
sandbox; these start real subprocesses. What the sandbox isolates is tested in test_sandbox.py."""

import time

import pytest

from tessy_dagster.evaluate.function_tests import STATUSES, SandboxResult, run_many, run_tests
from tessy_dagster.evaluate.sandbox import SandboxLimits

DOUBLE_TESTS = [(1, 2), (2, 4), (3, 6)]
DOUBLE = "def f(x):\n    return 2 * x\n"


def test_correct_function_passes():
    result = run_tests(DOUBLE, "f", DOUBLE_TESTS)
    assert result == SandboxResult("passed", 3, 3, "all 3 tests passed")
    assert result.passed


def test_wrong_function_fails_and_counts_passes():
    code = "def f(x):\n    return 2 if x == 1 else 0\n"
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "failed" and not result.passed
    assert (result.n_passed, result.n_tests) == (1, 3)
    assert result.detail == "input 2: expected 4, got 0"


def test_non_int_return_values_fail():
    code = "def f(x):\n    return {1: True, 2: 4.0, 3: '6'}[x]\n"
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "failed" and result.n_passed == 0
    assert result.detail == "input 1: expected 2, got True"


def test_syntax_error_is_error():
    result = run_tests("def f(x) return x", "f", DOUBLE_TESTS)
    assert result.status == "error"
    assert "SyntaxError" in result.detail


def test_missing_function():
    result = run_tests("def g(x):\n    return x\n", "f", DOUBLE_TESTS)
    assert result.status == "no_function"


def test_exception_is_error_and_other_tests_still_count():
    code = "def f(x):\n    if x == 2:\n        raise KeyError('boom')\n    return 2 * x\n"
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "error"
    assert result.n_passed == 2
    assert result.detail == "input 2: KeyError: 'boom'"


def test_sys_exit_is_error():
    result = run_tests("import sys\nsys.exit(0)\n", "f", DOUBLE_TESTS)
    assert result.status == "error"


def test_infinite_loop_times_out():
    limits = SandboxLimits(timeout_s=1.0)
    start = time.monotonic()
    result = run_tests("def f(x):\n    while True:\n        pass\n", "f", DOUBLE_TESTS, limits)
    assert result.status == "timeout"
    assert time.monotonic() - start < limits.timeout_s + 1.0


def test_sleeping_program_times_out():
    # Wall-clock limit, not only CPU: sleeping uses no CPU time.
    limits = SandboxLimits(timeout_s=0.5)
    result = run_tests("import time\ndef f(x):\n    time.sleep(30)\n", "f", DOUBLE_TESTS, limits)
    assert result.status == "timeout"


@pytest.mark.parametrize(
    "body",
    [
        "    big = [0] * 10**9\n",  # one allocation far beyond RLIMIT_AS
        "    chunks = []\n    while True:\n        chunks.append(' ' * 10**6)\n",  # gradual growth
    ],
)
def test_huge_allocation_hits_memory_limit(body):
    # On Linux RLIMIT_AS makes malloc fail, which Python reports as MemoryError.
    result = run_tests("def f(x):\n" + body + "    return 2 * x\n", "f", DOUBLE_TESTS)
    assert result.status == "memory"


def test_printed_fake_result_does_not_pass():
    fake = '{"outcome": "done", "got": [2, 4, 6]}'
    code = (
        "import json\n"
        f"print('{fake}')\n"
        "print(json.dumps({'status': 'passed', 'n_passed': 3, 'n_tests': 3}))\n"
        "def f(x):\n"
        f"    print('{fake}', flush=True)\n"
        "    return 0\n"
    )
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "failed" and result.n_passed == 0


def test_fake_result_written_to_every_fd_then_exit_does_not_pass():
    # Tries every fd, including the runner's private result fd, then exits
    # before the runner can write the real (nonce-tagged) line.
    code = (
        "import os\n"
        "def f(x):\n"
        "    line = b'0123456789abcdef {\"outcome\": \"done\", \"got\": [2, 4, 6]}\\n'\n"
        "    for fd in range(32):\n"
        "        try:\n"
        "            os.write(fd, line)\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
    )
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "crashed"
    assert not result.passed


def test_run_many_keeps_order():
    jobs = [
        (DOUBLE, "f", DOUBLE_TESTS),
        ("def f(x):\n    return 0\n", "f", DOUBLE_TESTS),
        ("def g(x):\n    return x\n", "f", DOUBLE_TESTS),
        ("import time\ndef f(x):\n    time.sleep(0.3)\n    return 2 * x\n", "f", DOUBLE_TESTS),
        ("def f(x):\n    return x + 1\n", "f", [(1, 2), (5, 6)]),
    ]
    results = run_many(jobs, workers=3)
    assert [r.status for r in results] == ["passed", "failed", "no_function", "passed", "passed"]
    assert [r.n_tests for r in results] == [3, 3, 3, 3, 2]


@pytest.mark.parametrize(
    "code, name, tests",
    [
        (DOUBLE, "", DOUBLE_TESTS),
        (DOUBLE, "not a name", DOUBLE_TESTS),
        (None, "f", DOUBLE_TESTS),
        (DOUBLE, "f", []),
        (DOUBLE, "f", [(1, 2, 3)]),
        (DOUBLE, "f", [1, 2]),
        (DOUBLE, "f", [("1", 2)]),
        (DOUBLE, "f", ((1, 2),)),
    ],
)
def test_bad_arguments_raise_value_error(code, name, tests):
    with pytest.raises(ValueError):
        run_tests(code, name, tests)


def test_bad_run_many_arguments_raise_value_error():
    with pytest.raises(ValueError):
        run_many([(DOUBLE, "f", DOUBLE_TESTS)], workers=0)
    with pytest.raises(ValueError):
        run_many([(DOUBLE, "f")])
    with pytest.raises(ValueError):
        run_tests(DOUBLE, "f", DOUBLE_TESTS, SandboxLimits(timeout_s=0))


def test_status_list():
    assert "sandbox_error" in STATUSES
