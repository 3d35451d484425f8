"""LiveCodeBench code generation (code_generation_lite files in a local folder): loading its problems.

This module reads the files into BENCHMARK_PROBLEMS rows (the prompt, the decoded test cases as `tests`
JSON); livecodebench_judge.py judges an answer on them by the reference's rules.

The reference is LiveCodeBench's own code (nvidia-livecodebench 26.3: benchmarks/code_generation.py,
prompts/code_generation.py). What carries over:
- Files test.jsonl, test2.jsonl, ... (one per release); private test cases are JSON, or base64 of a
  zlib-compressed pickle of the JSON string. The cases are the public ones then the private ones.
- The prompt: the generic system message and question template (the single-user-message form).
- A problem is functional when its metadata has func_name (its cases call that method), stdin otherwise;
  each case gets 6 s (codegen_metrics' default).
What does not carry over:
- The release window is the settings' (end exclusive); the reference's date filter includes its end.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import pickle
import re
import zlib
from pathlib import Path

from .common import bad_input, jsonl_records

TIMEOUT_S = 6  # codegen_metrics(timeout=6)
TEST_TYPES = ("stdin", "functional")
DIFFICULTIES = ("easy", "medium", "hard")
FIELDS = ("question_title", "question_content", "platform", "question_id", "contest_id", "contest_date",
          "starter_code", "difficulty", "public_test_cases", "private_test_cases", "metadata")

# prompts/code_generation.py, PromptConstants
SYSTEM_MESSAGE = ("You are an expert Python programmer. You will be given a question (problem specification) "
                  "and will generate a correct Python program that matches the specification and passes all tests.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose "
                "your code within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                   "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
                   "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")


def build_prompt(question_content: str, starter_code: str) -> str:
    """The reference's generic question template, after its system message (one user message, as its
    OpenAIReasonPreview style sends it)."""
    text = f"### Question:\n{question_content}\n\n"
    if starter_code:
        text += f"### Format: {WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    text += "### Answer: (use the provided format with backticks)\n\n"
    return f"{SYSTEM_MESSAGE}\n\n{text}"


# ---- loading -------------------------------------------------------------------------------------------

def test_files(folder: Path) -> list[Path]:
    """test.jsonl, test2.jsonl, ... in release order (the dataset's files)."""
    if not folder.is_dir():
        raise bad_input(folder, None, None, "no such folder",
                        "point the livecodebench suite's `path` at a folder holding code_generation_lite's "
                        "test.jsonl, test2.jsonl, ...")
    found = []
    for path in folder.iterdir():
        m = re.fullmatch(r"test(\d*)\.jsonl", path.name)
        if m and path.is_file():
            found.append((int(m.group(1) or 1), path))
    if not found:
        raise bad_input(folder, None, None, "no test*.jsonl file in this folder",
                        "copy code_generation_lite's test.jsonl, test2.jsonl, ... into it")
    return [path for _, path in sorted(found)]


class _StrOnly(pickle.Unpickler):
    # The compressed cases are a pickled str: refuse any class, so a crafted file cannot run code.
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def decode_cases(text) -> list:
    """public_test_cases / private_test_cases: a JSON list, or base64(zlib(pickle(JSON string)))."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        inner = _StrOnly(io.BytesIO(zlib.decompress(base64.b64decode(text.encode("utf-8"), validate=True)))).load()
    except Exception as exc:
        raise ValueError(f"neither JSON nor base64/zlib/pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(inner, str):
        raise ValueError(f"the decompressed value is a {type(inner).__name__}, not a JSON string")
    return json.loads(inner)


def _cases(path, line: int, field: str, text, fn_name: str | None) -> list[dict]:
    fix = "each case is {\"input\": str, \"output\": str, \"testtype\": \"stdin\"|\"functional\"}"
    try:
        cases = decode_cases(text)
    except ValueError as exc:
        raise bad_input(path, line, field, f"cannot decode the test cases: {exc}",
                        "write a JSON list of cases (or the dataset's compressed encoding)") from None
    if not isinstance(cases, list):
        raise bad_input(path, line, field, f"the test cases are a {type(cases).__name__}, not a list", fix)
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("input"), str) \
                or not isinstance(case.get("output"), str):
            raise bad_input(path, line, field, f"case {i} lacks a string `input` and `output`", fix)
        if case.get("testtype") not in TEST_TYPES:
            raise bad_input(path, line, field, f"case {i} has testtype {case.get('testtype')!r}", fix)
        if case["testtype"] == "functional" and not fn_name:
            raise bad_input(path, line, "metadata", f"{field} case {i} is functional but metadata has no func_name",
                            "add the method name: metadata {\"func_name\": \"...\"}")
        if fn_name:  # the reference json.loads every input line and the output: check now, not per answer
            try:
                [json.loads(x) for x in case["input"].split("\n")]
                json.loads(case["output"])
            except ValueError as exc:
                raise bad_input(path, line, field, f"functional case {i}: an input line or the output is not "
                                f"JSON ({exc})", "write one JSON value per input line and a JSON output") from None
        out.append({"input": case["input"], "output": case["output"]})
    return out


def _row(path: Path, line: int, record: dict, suite) -> dict:
    for name in FIELDS:
        if name not in record:
            raise bad_input(path, line, name, "missing", f"every row needs the fields {', '.join(FIELDS)}")
    try:
        date = dt.datetime.fromisoformat(str(record["contest_date"])).date()
    except ValueError:
        raise bad_input(path, line, "contest_date", f"not an ISO date: {record['contest_date']!r}",
                        "write e.g. 2025-03-01T00:00:00") from None
    try:
        metadata = json.loads(record["metadata"]) if isinstance(record["metadata"], str) else record["metadata"]
    except ValueError as exc:
        raise bad_input(path, line, "metadata", f"not JSON ({exc})", "write a JSON object string") from None
    if not isinstance(metadata, dict):
        raise bad_input(path, line, "metadata", "not a JSON object", "write e.g. {\"func_name\": \"twoSum\"} or {}")
    fn_name = metadata.get("func_name") or None
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        raise bad_input(path, line, "metadata", f"func_name {fn_name!r} is not an identifier", "fix the name")
    if record["difficulty"] not in DIFFICULTIES:
        raise bad_input(path, line, "difficulty", f"{record['difficulty']!r}", f"use one of {DIFFICULTIES}")
    cases = (_cases(path, line, "public_test_cases", record["public_test_cases"], fn_name)
             + _cases(path, line, "private_test_cases", record["private_test_cases"], fn_name))
    if not cases:
        raise bad_input(path, line, "private_test_cases", "the problem has no test case", "add its cases")
    tests = {"mode": "functional" if fn_name else "stdin", "fn_name": fn_name, "timeout_s": TIMEOUT_S,
             "cases": cases}
    return {
        "problem_id": str(record["question_id"]), "suite": suite.suite_name, "kind": "livecodebench",
        "prompt": build_prompt(str(record["question_content"]), str(record["starter_code"] or "")),
        "tests": json.dumps(tests), "difficulty": record["difficulty"], "release_date": date.isoformat(),
        "source_file": str(path), "source_row": line - 1,  # 0-based, as every table counts
    }


def load_livecodebench(suite) -> list[dict]:
    """The suite's problems in file order, within its release window (start inclusive, end exclusive),
    the first `limit` of them."""
    folder = Path(suite.path)
    start, end = suite.release_window
    rows, seen, dates = [], {}, []
    for path in test_files(folder):
        for line_no, record in jsonl_records(path, "write one JSON object per line"):
            # the date first: rows outside the window are skipped without decoding their cases
            try:
                date = dt.datetime.fromisoformat(str(record.get("contest_date"))).date()
            except ValueError:
                raise bad_input(path, line_no, "contest_date", f"not an ISO date: {record.get('contest_date')!r}",
                                "write e.g. 2025-03-01T00:00:00") from None
            dates.append(date)
            if (start and date < start) or (end and date >= end):
                continue
            row = _row(path, line_no, record, suite)
            if row["problem_id"] in seen:
                raise bad_input(path, line_no, "question_id", f"{row['problem_id']!r} also at {seen[row['problem_id']]}",
                                "keep one row per question")
            seen[row["problem_id"]] = f"{path.name}, line {line_no}"
            rows.append(row)
            if suite.limit is not None and len(rows) >= suite.limit:
                return rows
    if not rows:
        found = f"{min(dates)} to {max(dates)}" if dates else "no rows"
        raise ValueError(f"{folder}: no problem in the release window [{start or '-'}, {end or '-'}) "
                         f"(start inclusive, end exclusive); the files have contest dates {found}; choose a "
                         f"window (version or release_from/release_to) that overlaps them")
    return rows
