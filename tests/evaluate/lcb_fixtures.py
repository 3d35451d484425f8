"""A few LiveCodeBench-format problems (code_generation_lite rows), written by hand, with answers.

`write_lcb_problems(folder)` writes them as the dataset's files (test.jsonl: one 2024 problem;
test6.jsonl: five 2025 problems, stdin and functional `class Solution`, private cases in the compressed
encoding except for one problem) and returns (records, right, wrong): the rows as written, and a right
and a wrong model answer (fenced code) per question_id. `lcb_variants()` adds answers that crash, time
out, or probe the comparison and harness rules.
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path


def compress_cases(cases: list[dict]) -> str:
    """The dataset's encoding of private cases: base64(zlib(pickle(JSON string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode("ascii")


def _case(inp: str, out: str, testtype: str) -> dict:
    return {"input": inp, "output": out, "testtype": testtype}


def _record(qid, title, content, date, difficulty, public, private, *, starter="", func_name=None,
            compressed=True, platform="atcoder") -> dict:
    return {
        "question_title": title, "question_content": content, "platform": platform, "question_id": qid,
        "contest_id": "fixture", "contest_date": date, "starter_code": starter, "difficulty": difficulty,
        "public_test_cases": json.dumps(public),
        "private_test_cases": compress_cases(private) if compressed else json.dumps(private),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code.strip()}\n```\n"


def _stdin(pairs):
    return [_case(i, o, "stdin") for i, o in pairs]


def _func(pairs):
    return [_case(i, o, "functional") for i, o in pairs]


_LEET = "leetcode"
_SOLUTION = "class Solution:\n    def {name}(self, {args}):\n        "

PROBLEMS = [
    # (file, record, right code, wrong code)
    ("test.jsonl", _record(
        "fx_echo", "Echo", "Print the given word twice, separated by a space.", "2024-09-14T00:00:00", "easy",
        _stdin([("ab\n", "ab ab\n")]), _stdin([("x\n", "x x\n"), ("hello\n", "hello hello\n")])),
     "w = input().strip()\nprint(w, w)",
     "w = input().strip()\nprint(w)"),
    ("test6.jsonl", _record(
        "fx_sum", "Sum", "Read two integers A and B and print A+B.", "2025-02-10T00:00:00", "easy",
        _stdin([("1 2\n", "3\n"), ("10 -4\n", "6\n")]),
        _stdin([("0 0\n", "0\n"), ("1000000000000 1\n", "1000000000001\n"), ("-5 -5\n", "-10\n")])),
     "a, b = map(int, input().split())\nprint(a + b)",
     "a, b = map(int, input().split())\nprint(a - b)"),
    ("test6.jsonl", _record(
        "fx_mean", "Mean and max", "Read N and N integers; print their mean with 6 decimals, then their maximum.",
        "2025-03-05T12:00:00", "medium",
        _stdin([("4\n1 2 3 4\n", "2.500000\n4\n"), ("1\n7\n", "7.000000\n7\n")]),
        _stdin([("2\n1 2\n", "1.500000\n2\n"), ("5\n1 2 3 4 6\n", "3.200000\n6\n")]), compressed=False),
     "n = int(input())\na = list(map(int, input().split()))\nprint(f'{sum(a) / n:.6f}')\nprint(max(a))",
     "n = int(input())\na = list(map(int, input().split()))\nprint(f'{sum(a) / n:.6f}')\nprint(min(a))"),
    ("test6.jsonl", _record(
        "fx_two_sum", "Two Sum", "Return the indices of the two numbers that add up to target.",
        "2025-03-15T00:00:00", "easy",
        _func([("[2,7,11,15]\n9", "[0, 1]"), ("[3,2,4]\n6", "[1, 2]")]),
        _func([("[3,3]\n6", "[0, 1]"), ("[1,5,9]\n14", "[1, 2]")]),
        starter=_SOLUTION.format(name="twoSum", args="nums: List[int], target: int) -> List[int]"),
        func_name="twoSum", platform=_LEET),
     "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
     "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
     "                return [seen[target - x], i]\n            seen[x] = i\n",
     "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        return [0, 1]\n"),
    ("test6.jsonl", _record(
        "fx_can_split", "Can split", "Return true if nums can be split into two parts of equal sum.",
        "2025-04-02T00:00:00", "medium",
        _func([("[1,5,11,5]", "true"), ("[1,2,3,5]", "false")]),
        _func([("[2,2]", "true"), ("[1]", "false"), ("[1,1,4]", "false"), ("[3,1,1,2,2,1]", "true")]),
        starter=_SOLUTION.format(name="canPartition", args="nums: List[int]) -> bool"),
        func_name="canPartition", platform=_LEET),
     "class Solution:\n    def canPartition(self, nums: List[int]) -> bool:\n        s = sum(nums)\n"
     "        if s % 2:\n            return False\n        reach = {0}\n        for x in nums:\n"
     "            reach |= {r + x for r in reach}\n        return s // 2 in reach\n",
     "class Solution:\n    def canPartition(self, nums: List[int]) -> bool:\n        return sum(nums) % 2 == 0\n"),
    ("test6.jsonl", _record(
        "fx_pairs", "Adjacent pairs", "Return the list of [nums[i], nums[i+1]] pairs, and their count.",
        "2025-04-20T00:00:00", "hard",
        _func([("[1,2,3]", "[[1, 2], [2, 3]]")]),
        _func([("[5]", "[]"), ("[4,4,1]", "[[4, 4], [4, 1]]")]),
        starter=_SOLUTION.format(name="pairs", args="nums: List[int]) -> List[List[int]]"),
        func_name="pairs", platform=_LEET),
     "class Solution:\n    def pairs(self, nums):\n        return [[a, b] for a, b in zip(nums, nums[1:])]\n",
     "class Solution:\n    def pairs(self, nums):\n        return [[a, a] for a in nums[1:]]\n"),
]


def write_lcb_problems(folder) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Write the problems into `folder` as test.jsonl / test6.jsonl; (records, right, wrong)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[dict]] = {}
    for file, record, _, _ in PROBLEMS:
        by_file.setdefault(file, []).append(record)
    for file, records in by_file.items():
        (folder / file).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    records = [r for file in sorted(by_file, key=lambda f: (len(f), f)) for r in by_file[file]]
    right = {record["question_id"]: fence(code) for _, record, code, _ in PROBLEMS}
    wrong = {record["question_id"]: fence(code) for _, record, _, code in PROBLEMS}
    return records, right, wrong


# Answers beyond right and wrong, per question: (label, answer). Each probes a rule of the reference.
_STDIN_COMMON = [
    ("crash", fence("raise RuntimeError('boom')")),
    ("timeout", fence("while True:\n    pass")),
    ("no_fence", "a, b = map(int, input().split())\nprint(a + b)"),
    ("two_blocks_last_wins", "```python\nprint('draft')\n```\nFinal version:\n```python\n"
                             "a, b = map(int, input().split())\nprint(a + b)\n```"),
]


def lcb_variants() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for _, record, good, bad in PROBLEMS:
        out[record["question_id"]] = [("right", fence(good)), ("wrong", fence(bad))]
    out["fx_echo"] += [("crash", fence("w = input()\nprint(w, w)\nraise ValueError('late')")),
                       ("trailing_space", fence("w = input().strip()\nprint(w + ' ' + w + '   ')\nprint()"))]
    out["fx_sum"] += _STDIN_COMMON + [
        ("main_guard_last", fence("def main():\n    a, b = map(int, input().split())\n    print(a + b)\n"
                                  "if __name__ == '__main__':\n    main()")),
        ("main_guard_not_last", fence("def main():\n    a, b = map(int, input().split())\n    print(a + b)\n"
                                      "if __name__ == \"__main__\":\n    main()\nx = 1")),
        ("exit_after_print", fence("import sys\na, b = map(int, input().split())\nprint(a + b)\nsys.exit(3)\nprint(0)")),
        ("stdin_buffer", fence("import sys\na, b = map(int, sys.stdin.buffer.readline().split())\nprint(a + b)")),
        ("from_sys_stdin", fence("from sys import stdin\na, b = map(int, stdin.readline().split())\nprint(a + b)")),
        ("global_in_def", fence("a, b = map(int, input().split())\ndef f():\n    global a\n    return a + b\nprint(f())")),
        ("prelude_names", fence("a, b = map(int, input().split())\nprint(int(fsum([a, b])) if gcd(1, 1) else 0)")),
        ("blank_line_between", fence("a, b = map(int, input().split())\nprint()\nprint(a + b)")),
        ("stdout_write_prelude", fence("a, b = map(int, input().split())\nstdout.write(str(a + b))")),
    ]
    out["fx_mean"] += [
        ("crash", fence("n = int(input())\nprint(1 // (n - n))")),
        ("timeout", fence("n = int(input())\nwhile n:\n    n += 1")),
        ("more_digits_equal", fence("n = int(input())\na = list(map(int, input().split()))\n"
                                    "print(f'{sum(a) / n:.9f}')\nprint(float(max(a)))")),
        ("raw_float", fence("n = int(input())\na = list(map(int, input().split()))\nprint(sum(a) / n)\nprint(max(a))")),
        ("close_not_equal", fence("n = int(input())\na = list(map(int, input().split()))\n"
                                  "print(f'{sum(a) / n + 1e-7:.7f}')\nprint(max(a))")),
        ("one_line", fence("n = int(input())\na = list(map(int, input().split()))\nprint(f'{sum(a) / n:.6f}', max(a))")),
        ("extra_token", fence("n = int(input())\na = list(map(int, input().split()))\n"
                              "print(f'{sum(a) / n:.6f} ')\nprint(max(a), 0)")),
        ("read_all", fence("import sys\nd = sys.stdin.read().split()\nn = int(d[0])\na = list(map(int, d[1:1+n]))\n"
                           "print('%.6f' % (sum(a) / n))\nprint(max(a))")),
    ]
    solve_two_sum = ("        seen = {{}}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
                     "                return {ret}\n            seen[x] = i\n")
    head = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    out["fx_two_sum"] += [
        ("crash", fence(head + "        return [nums[100]]\n")),
        ("timeout", fence(head + "        while True:\n            pass\n")),
        ("tuple_result", fence(head + solve_two_sum.format(ret="(seen[target - x], i)"))),
        ("prints_too", fence(head + "        print('debug', nums)\n" + solve_two_sum.format(ret="[seen[target - x], i]"))),
        ("no_method", fence("class Solution:\n    def two_sum(self, nums, target):\n        return [0, 1]\n")),
        ("state_on_instance", fence(head + "        self.calls = getattr(self, 'calls', 0) + 1\n"
                                    + solve_two_sum.format(ret="[seen[target - x], i]"))),
        ("crash_on_later_case", fence(head + "        if nums == [3, 3]:\n            raise KeyError(1)\n"
                                      + solve_two_sum.format(ret="[seen[target - x], i]"))),
    ]
    can_head = "class Solution:\n    def canPartition(self, nums: List[int]) -> bool:\n"
    body = ("        s = sum(nums)\n        if s % 2:\n            return {f}\n        reach = {{0}}\n"
            "        for x in nums:\n            reach |= {{r + x for r in reach}}\n        return {t}\n")
    out["fx_can_split"] += [
        ("int_for_bool", fence(can_head + body.format(f="0", t="int(s // 2 in reach)"))),
        ("string_for_bool", fence(can_head + body.format(f="'false'", t="'true' if s // 2 in reach else 'false'"))),
        ("exit_in_method", fence(can_head + "        import sys\n        sys.exit(0)\n")),
        ("timeout", fence(can_head + "        import time\n        time.sleep(30)\n")),
    ]
    out["fx_pairs"] += [
        ("nested_tuples", fence("class Solution:\n    def pairs(self, nums):\n        return list(zip(nums, nums[1:]))\n")),
        ("tuple_of_lists", fence("class Solution:\n    def pairs(self, nums):\n"
                                 "        return tuple([a, b] for a, b in zip(nums, nums[1:]))\n")),
        ("plain_function", fence("def pairs(nums):\n    return [[a, b] for a, b in zip(nums, nums[1:])]\n")),
        ("crash_defining", fence("class Solution:\n    def pairs(self, nums)\n        return []\n")),
    ]
    return out
