"""Problems with one final answer (AIME-style), from a local JSONL file.

File format: one JSON object per line with `id` (string or int, unique), `problem` (the text) and
`answer` (the reference answer: a number or LaTeX such as "\\frac{1}{2}"); blank lines are skipped.

The judge takes the last balanced \\boxed{...} (or \\fbox{...}) of the answer and compares it with the
reference answer using HuggingFace's math-verify (0.9.0): LaTeX parsed by latex2sympy2_extended (an
antlr grammar, no eval), then compared symbolically and numerically by sympy. We never use math-verify's
plain-expression extraction, which parses with sympy's parse_expr, an eval. sympy can still take
unbounded time or memory on a crafted answer (9^{9^{9^9}}), and math-verify's signal timers need the
main thread, so the comparison runs in a worker process of ours, with a memory limit and a hard deadline
per answer; a worker that misses it is killed (verdict: timeout) and the next answer starts a new one.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import Verdict, bad_input, jsonl_records, verdict

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."  # DeepSeek-R1's AIME prompt
MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not a final answer
PARSE_TIMEOUT_S = 5  # math-verify's own timers (parse, verify), inside the worker
DEADLINE_S = 20.0  # per answer, from the parent: the worker is killed past it
START_DEADLINE_S = 120.0  # importing sympy takes a few seconds on a loaded machine
WORKER_MEMORY_MB = 2048


def load_final_answer(suite) -> list[dict]:
    path = Path(suite.path)
    if not path.is_file():
        raise bad_input(path, None, None, "no such file",
                        "point the final_answer suite's `path` at a JSONL file of {id, problem, answer} rows")
    rows, seen = [], {}
    fix = "write one JSON object per line: {\"id\": ..., \"problem\": \"...\", \"answer\": \"...\"}"
    for line_no, record in jsonl_records(path, fix):
        for name in ("id", "problem", "answer"):
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
                raise bad_input(path, line_no, name, "missing or empty" if value in (None, "") else
                                f"a {type(value).__name__}, not a string or number", fix)
        problem_id = str(record["id"])
        if problem_id in seen:
            raise bad_input(path, line_no, "id", f"{problem_id!r} also on line {seen[problem_id]}", "make ids unique")
        seen[problem_id] = line_no
        rows.append({
            "problem_id": problem_id, "suite": suite.suite_name, "kind": "final_answer",
            "prompt": f"{str(record['problem']).strip()}\n{INSTRUCTION}",
            "tests": json.dumps({"answer": str(record["answer"]).strip()}),
            "difficulty": "", "release_date": "", "source_file": str(path), "source_row": line_no - 1,
        })
        if suite.limit is not None and len(rows) >= suite.limit:
            break
    if not rows:
        raise bad_input(path, None, None, "no problem in the file", fix)
    return rows


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} / \\fbox{...}, braces balanced; None if there is none or the
    last one is cut off (an answer truncated inside its box has no final answer)."""
    starts = [(i, len(macro)) for macro in ("\\boxed", "\\fbox") for i in _find_all(text, macro)]
    if not starts:
        return None
    start, length = max(starts)
    rest = text[start + length:]
    if not rest.lstrip().startswith("{"):  # "\boxed 5"
        words = rest.split("$")[0].split()
        return words[0] if words and rest[:1].isspace() else None
    depth = 0
    for j, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[rest.index("{") + 1:j]
    return None


def _find_all(text: str, sub: str):
    i = text.find(sub)
    while i >= 0:
        yield i
        i = text.find(sub, i + 1)


# The worker: our own code (it runs in the scorer's environment, not the sandbox), answering one JSON
# line per request line. Results go to the stdout it had at start; math-verify's chatter to stderr.
_WORKER = r'''
import json, logging, os, resource, sys
memory = int(sys.argv[1]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
out = os.fdopen(os.dup(1), "w")
sys.stdout = sys.stderr
logging.disable(logging.CRITICAL)
try:
    from math_verify import LatexExtractionConfig, parse, verify
except Exception as exc:
    out.write(json.dumps({"ready": False, "error": "%s: %s" % (type(exc).__name__, exc)}) + "\n")
    out.flush()
    sys.exit(0)
timeout = int(sys.argv[2])
config = [LatexExtractionConfig(boxed_match_priority=0)]
out.write(json.dumps({"ready": True}) + "\n")
out.flush()
for line in sys.stdin:
    gold, pred = json.loads(line)
    try:
        g = parse("\\boxed{" + gold + "}", extraction_config=config, parsing_timeout=timeout)
        p = parse("\\boxed{" + pred + "}", extraction_config=config, parsing_timeout=timeout)
        if not g:
            reply = {"ok": False, "error": "the reference answer does not parse"}
        elif not p:
            reply = {"ok": False, "detail": "the answer does not parse"}
        else:
            ok = verify(g, p, timeout_seconds=timeout)
            reply = {"ok": bool(ok), "detail": "%s %s %s" % (p[0], "==" if ok else "!=", g[0])}
    except BaseException as exc:
        reply = {"ok": False, "detail": "%s: %s" % (type(exc).__name__, str(exc)[:100])}
    out.write(json.dumps(reply) + "\n")
    out.flush()
'''


class _Deadline(Exception):
    pass


class _Verifier:
    """One math-verify worker process, shared by the threads of this process (one answer at a time)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc = None
        self._buffer = b""

    def _read_line(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._proc.stdout], [], [], remaining)[0]:
                raise _Deadline()
            chunk = os.read(self._proc.stdout.fileno(), 65536)
            if not chunk:
                raise _Deadline()  # the worker died (e.g. its memory limit)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _start(self) -> None:
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(WORKER_MEMORY_MB), str(PARSE_TIMEOUT_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        try:
            hello = self._read_line(time.monotonic() + START_DEADLINE_S)
        except _Deadline:
            self.close()
            raise RuntimeError("the math-verify worker did not start") from None
        if not hello.get("ready"):
            self.close()
            raise RuntimeError(f"final_answer judging needs math-verify (pip install math-verify==0.9.0): "
                               f"{hello.get('error')}")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def compare(self, gold: str, pred: str) -> dict:
        """{"ok": bool, "detail": str} or {"timeout": True}."""
        with self._lock:
            if self._proc is None:
                self._start()
            self._proc.stdin.write((json.dumps([gold, pred]) + "\n").encode("utf-8", "backslashreplace"))
            self._proc.stdin.flush()
            try:
                return self._read_line(time.monotonic() + DEADLINE_S)
            except _Deadline:
                self.close()
                return {"timeout": True}


_verifier = _Verifier()
atexit.register(_verifier.close)


def judge_final_answer(tests: dict, answer: str, limits=None) -> Verdict:
    gold = str(tests["answer"])
    pred = last_boxed(answer)
    if pred is None:
        return verdict("no_answer", "no \\boxed{...} in the answer", 0, 1)
    if "".join(pred.split()) == "".join(gold.split()):
        return verdict("passed", f"{pred.strip()} == {gold}", 1, 1)  # same text: no need to parse
    if len(pred) > MAX_ANSWER_CHARS:
        return verdict("failed", f"the boxed answer is {len(pred)} characters long", 0, 1)
    reply = _verifier.compare(gold, pred)
    if reply.get("timeout"):
        return verdict("timeout", f"comparing {pred[:40]!r} took over {DEADLINE_S:.0f}s", 0, 1)
    if reply.get("error"):  # bad benchmark data, reported on every row it touches rather than stopping the run
        return verdict("error", f"reference answer {gold!r}: {reply['error']}", 0, 1)
    return verdict("passed" if reply.get("ok") else "failed", str(reply.get("detail", "")), int(bool(reply.get("ok"))), 1)
