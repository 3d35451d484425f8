"""Is the thinking right, and the answer? The toy world's arms run on the same sampled prompts; writes JSON.

Not a test: a measurement on the toy world's models (a `make demo` home, `--home`). Prompts are drawn from
the toy world's prompt generator (`--n-prompts` of them, 4,000 as in issue 12), `--prompts-per-step` of
each step count with a fixed seed, and every arm in `--arms` runs on the same ones with the engine's
settings (sampling temperature 0.7, top_p 0.8, top_k 20; `torch.manual_seed(cooperate.seed)` before each
arm). Each trace is judged against its prompt's hidden tests twice: the thinking's final code line
(`Code: return <expr>`, run as `def f(x):\n    return <expr>`) and the answer. Per arm and step count the
report gives both pass rates, and the span statistics that explain a failure: teacher token share,
switches per trace, the share of thinkings without a code line, the share of capability lines (a line's text outside its style markers) written by
more than one author, the share of the capability characters the student wrote and of the style
characters the teacher wrote, the student's mean span in words, how often the answer's expression is the
thinking's own final expression, and the stop reasons. A few failing tessy traces are kept with their
spans (`examples`: traces whose thinking fails).

    .venv/bin/python benchmarks/trace_correctness.py --home /work/toyhome --prompts-per-step 150 \
        --arms teacher_only,tessy --out benchmarks/results/trace_correctness_before.json

`--boundary-dir` runs the cooperative arms with another boundary model (an experiment's), `--settings` a
JSON overrides file as everywhere else.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from tessy_dagster.boundary.model import BoundaryPredictor
from tessy_dagster.boundary.windows import lexicon_spans
from tessy_dagster.cooperate.engine import ARM_PLAN, CooperativeEngine
from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.evaluate.benchmarks import judge_many
from tessy_dagster.settings import load_settings
from tessy_dagster.storage import artifact_dir
from tessy_dagster.toyworld import tasks
from tessy_dagster.toyworld.world import prompt_rows

STEP_COUNTS = ("1-step", "2-step", "3-step")
_CODE = re.compile(r"return\s+(.*\S)")


def sample_prompts(settings, n_prompts: int, per_step: int, seed: int) -> list[dict]:
    rows = prompt_rows(settings.toyworld.model_copy(update={"n_prompts": n_prompts}))
    by_step = defaultdict(list)
    for r in rows:
        by_step[r["difficulty"]].append(r)
    rng = random.Random(seed)
    picked = []
    for step in STEP_COUNTS:
        pool = sorted(by_step[step], key=lambda r: r["problem_id"])
        picked.extend(rng.sample(pool, min(per_step, len(pool))))
    return picked


def thinking_code(thinking: str) -> str:
    """The thinking's final code as a function: its last line holding `return <expr>`; '' if none."""
    for line in reversed(thinking.splitlines()):
        m = _CODE.search(line)
        if m:
            return f"def {tasks.FUNCTION_NAME}(x):\n    return {m.group(1)}"
    return ""


def answer_expression(text: str) -> str:
    m = _CODE.search(text)
    return re.sub(r"\s+", "", m.group(1)) if m else ""


def judge(rows: list[dict], prompts: dict, workers: int) -> None:
    """Adds `thinking_passed` and `answer_passed` to each row (the toy judge in the sandbox)."""
    try:  # the corpus metric, where it exists
        from tessy_dagster.corpus.correctness import judge_traces
    except ImportError:
        judge_traces = None
    if judge_traces is not None:
        tests = {pid: p["tests"] for pid, p in prompts.items()}
        verdicts = judge_traces(rows, tests)
        for row, v in zip(rows, verdicts):
            # None: the sandbox could not run it (no verdict); counted apart, not as a pass
            row["thinking_passed"], row["answer_passed"] = v["thinking_passed"], v["answer_passed"]
            row["judge"] = "corpus.correctness"
        return
    problem = {pid: {"problem_id": pid, "kind": "toy", "tests": p["tests"]} for pid, p in prompts.items()}
    pairs = []
    for r in rows:
        pairs.append((problem[r["prompt_id"]], thinking_code(r["thinking"])))
        pairs.append((problem[r["prompt_id"]], r["answer"]))
    verdicts = judge_many(pairs, workers=workers)
    for i, r in enumerate(rows):
        r["thinking_passed"] = verdicts[2 * i].status == "passed"
        r["answer_passed"] = verdicts[2 * i + 1].status == "passed"
        r["judge"] = "evaluate.benchmarks.judge_many"


def span_stats(row: dict) -> dict:
    """Who wrote what in one trace, by the toy world's own style markers."""
    text = row["thinking"]
    author = [None] * len(text)
    for sp in row["spans"]:
        for i in range(sp["start"], sp["end"]):
            author[i] = sp["author"]
    style = [False] * len(text)
    for s, e in lexicon_spans(text, tasks.STYLE_PHRASES):
        for i in range(s, e):
            style[i] = True
    capability_lines = mixed_lines = 0
    chars = Counter()  # (kind, author) -> non-space characters
    pos = 0
    for line in text.split("\n"):
        authors = set()
        for i in range(pos, pos + len(line)):
            if text[i].isspace():
                continue
            kind = "style" if style[i] else "capability"
            chars[kind, author[i]] += 1
            if kind == "capability":
                authors.add(author[i])
        if authors:
            capability_lines += 1
            mixed_lines += len(authors) > 1
        pos += len(line) + 1
    student_spans = [sp for sp in row["spans"] if sp["author"] == "student"]
    cap = chars["capability", "student"] + chars["capability", "teacher"]
    sty = chars["style", "student"] + chars["style", "teacher"]
    return {
        "capability_lines": capability_lines, "mixed_capability_lines": mixed_lines,
        "student_capability_chars": chars["capability", "student"], "capability_chars": cap,
        "teacher_style_chars": chars["style", "teacher"], "style_chars": sty,
        "student_span_words": [len(sp["text"].split()) for sp in student_spans],
    }


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"traces": 0}
    stats = [span_stats(r) for r in rows]
    total = sum(r["n_tokens_total"] for r in rows)
    span_words = [w for s in stats for w in s["student_span_words"]]
    cap = sum(s["capability_chars"] for s in stats)
    sty = sum(s["style_chars"] for s in stats)
    lines = sum(s["capability_lines"] for s in stats)
    follows = [answer_expression(r["answer"]) == answer_expression(thinking_code(r["thinking"]).replace("\n", " "))
               and answer_expression(r["answer"]) != "" for r in rows]
    return {
        "traces": n,
        "thinking_correct": round(sum(r["thinking_passed"] is True for r in rows) / n, 4),
        "answer_correct": round(sum(r["answer_passed"] is True for r in rows) / n, 4),
        "unjudged": sum(r["thinking_passed"] is None or r["answer_passed"] is None for r in rows),
        "answer_is_thinking_code": round(sum(follows) / n, 4),
        # the thinking ended before writing its code line (either model may end it)
        "thinking_without_code_line": round(sum(not thinking_code(r["thinking"]) for r in rows) / n, 4),
        "teacher_token_share": round(sum(r["n_tokens_teacher"] for r in rows) / total, 4) if total else 0.0,
        "mean_switches": round(sum(r["n_switches"] for r in rows) / n, 2),
        "mixed_capability_line_share": round(sum(s["mixed_capability_lines"] for s in stats) / lines, 4) if lines else 0.0,
        "student_share_of_capability_chars": round(sum(s["student_capability_chars"] for s in stats) / cap, 4) if cap else 0.0,
        "teacher_share_of_style_chars": round(sum(s["teacher_style_chars"] for s in stats) / sty, 4) if sty else 0.0,
        "mean_student_span_words": round(sum(span_words) / len(span_words), 2) if span_words else 0.0,
        "student_spans_per_trace": round(len(span_words) / n, 2),
        "mean_tokens": round(total / n, 1),
        "ended": dict(Counter(r["ended"] for r in rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a TESSY_HOME with the toy world's models")
    parser.add_argument("--settings", default=None, help="a JSON overrides file on the toy profile")
    parser.add_argument("--boundary-dir", default=None, help="default: <home>/boundary_model/all")
    parser.add_argument("--prompts-per-step", type=int, default=150)
    parser.add_argument("--n-prompts", type=int, default=4000, help="toy prompts generated to sample from")
    parser.add_argument("--arms", default="teacher_only,tessy")
    parser.add_argument("--seed", type=int, default=0, help="which prompts are sampled")
    parser.add_argument("--workers", type=int, default=2, help="sandbox runs at a time")
    parser.add_argument("--examples", type=int, default=6, help="failing tessy traces kept per step count")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared two-core machine more threads spin against each other)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    settings = load_settings("toy", args.settings)
    coop = settings.cooperate
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARM_PLAN]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose among {sorted(ARM_PLAN)}")
    sampled = sample_prompts(settings, args.n_prompts, args.prompts_per_step, args.seed)
    prompts = {r["problem_id"]: r for r in sampled}
    home = Path(args.home)
    models = {role: load_generator(artifact_dir(home, f"{role}_model"), coop.generation, role=role)
              for role in ("teacher", "student")}
    boundary_dir = Path(args.boundary_dir) if args.boundary_dir else artifact_dir(home, "boundary_model")
    boundary = BoundaryPredictor(boundary_dir, context_tokens=settings.boundary.context_tokens,
                                 batch_size=coop.batch_size)
    report = {"home": str(home), "settings_file": args.settings, "boundary_dir": str(boundary_dir),
              "n_prompts_generated": args.n_prompts, "prompts_per_step": args.prompts_per_step, "seed": args.seed,
              "sampling": coop.sampling.model_dump(), "cooperate_seed": coop.seed,
              "chunk_tokens": {"teacher": coop.teacher_chunk_tokens, "student": coop.student_chunk_tokens},
              "context_tokens": settings.boundary.context_tokens, "arms": {}, "examples": {}}
    for arm in arms:
        torch.manual_seed(coop.seed)
        engine = CooperativeEngine(models, boundary, coop, provenance={}, progress=lambda m: None)
        start = time.perf_counter()
        rows = engine.run(arm, [(r["problem_id"], r["prompt"]) for r in sampled])
        seconds = time.perf_counter() - start
        judge(rows, prompts, args.workers)
        by_step = defaultdict(list)
        for r in rows:
            by_step[prompts[r["prompt_id"]]["difficulty"]].append(r)
        report["arms"][arm] = {"wall_seconds": round(seconds, 1), "judge": rows[0].get("judge") if rows else None,
                               **{step: summarize(by_step[step]) for step in STEP_COUNTS}, "all": summarize(rows)}
        print(json.dumps({arm: {s: {k: v for k, v in report["arms"][arm][s].items() if k != "ended"}
                                for s in STEP_COUNTS}}), flush=True)
        if ARM_PLAN[arm][0] == "cooperative":
            for step in STEP_COUNTS:
                bad = [r for r in by_step[step] if r["thinking_passed"] is False]
                report["examples"].setdefault(arm, {})[step] = [
                    {"prompt": r["prompt"], "thinking_passed": r["thinking_passed"],
                     "answer_passed": r["answer_passed"], "answer": r["answer"],
                     "spans": [[sp["author"][0], sp["text"]] for sp in r["spans"]]} for r in bad[:args.examples]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
