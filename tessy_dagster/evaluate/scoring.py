"""Benchmark scoring: a model answers the held-out problems; the sandbox runs each answer's hidden tests.

pass@1 is one sampled answer per problem (sampling, not greedy: greedy decoding collapses the style
markers, which we also measure). The style-marker rates of the thinking are split by lexicon.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Callable

from ..settings import EvalSettings
from ..toyworld.tasks import FUNCTION_NAME
from ..toyworld.tokenizers import THINK_END
from ..corpus.style import marker_rates
from .sandbox import SandboxLimits, run_many


def split_response(text: str) -> tuple[str, str]:
    """(thinking, answer); no end-of-thinking marker means no answer."""
    if THINK_END not in text:
        return text.strip(), ""
    thinking, answer = text.split(THINK_END, 1)
    return thinking.strip(), answer.strip()


def score_generator(generator, problems: list[dict], settings: EvalSettings,
                    progress: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """Rows per problem (schema SCORES) and a summary: pass@1 overall and per step count, marker rates."""
    import torch

    torch.manual_seed(settings.seed)
    prompts = [generator.chat_prompt(p["prompt"]) for p in problems]
    progress(f"generating answers to {len(problems)} problems")
    outs = generator.generate(prompts, settings.max_new_tokens, settings.sampling, stop_at_think_end=False)
    split = [split_response(o.text) for o in outs]
    jobs = [(answer or "pass", FUNCTION_NAME, list(zip(p["test_inputs"], p["test_outputs"])))
            for p, (_, answer) in zip(problems, split)]
    progress(f"running hidden tests of {len(jobs)} answers in the sandbox")
    results = run_many(jobs, SandboxLimits(timeout_s=settings.timeout_s, memory_mb=settings.memory_mb))
    rows = []
    for p, out, (thinking, answer), res in zip(problems, outs, split, results):
        teacher_rate, student_rate = marker_rates(thinking)
        rows.append({
            "problem_id": p["problem_id"], "n_steps": p["n_steps"], "thinking": thinking, "answer": answer,
            "finish_reason": out.finish_reason, "status": res.status if answer else "no_answer",
            "n_passed": res.n_passed if answer else 0, "n_tests": res.n_tests, "passed": bool(answer) and res.passed,
            "teacher_marker_rate": teacher_rate, "student_marker_rate": student_rate,
        })
    return rows, summarize(rows)


def summarize(rows: list[dict]) -> dict:
    if not rows:
        raise ValueError("no benchmark rows to summarize")
    by_steps = defaultdict(list)
    for r in rows:
        by_steps[r["n_steps"]].append(r["passed"])
    summary = {
        "pass_at_1": sum(r["passed"] for r in rows) / len(rows),
        "teacher_marker_rate": sum(r["teacher_marker_rate"] for r in rows) / len(rows),
        "student_marker_rate": sum(r["student_marker_rate"] for r in rows) / len(rows),
        "answered_share": sum(bool(r["answer"]) for r in rows) / len(rows),
        "problems": len(rows),
    }
    for n, passed in sorted(by_steps.items()):
        summary[f"pass_at_1_{n}_step"] = sum(passed) / len(passed)
    return summary


def problems_from_table(table) -> list[dict]:
    rows = table.to_pylist()
    for r in rows:
        r["steps"] = json.loads(r["steps"])
    return rows
