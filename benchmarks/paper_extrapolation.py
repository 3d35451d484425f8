"""Compute per finished trace at the paper's scale, from what `cooperation_cost.py` measured on the toy models.

Not a measurement: arithmetic on one, with every assumption named here and written into the JSON. The
paper's setup: GPT-OSS-120B as teacher (5.1B active parameters), Qwen3-8B as student (8.2B), a Qwen3-0.6B
boundary model (0.6B), traces of 14,602 tokens on average for TESSY and 22,196 for teacher-only.

Per finished trace, compute is 2 x active parameters x tokens processed, per model, prefill and decode apart
(attention over the context is left out, as that approximation does). What carries over from the toy
measurement (the tessy arm of the JSON given), as rates per kept thinking token:
- the teacher's share of the kept thinking tokens (s), and how often the author switches (r);
- each model's tokens generated per token kept, so the rollback waste (w_teacher, w_student).
Then for a TESSY trace of L tokens: the teacher decodes s L (1 + w_teacher) and reads (prefill) the
student's (1 - s) L; the student decodes (1 - s) L (1 + w_student) and reads the teacher's s L; the boundary
model reads every generated token once, plus a window of `--context-tokens` at the start of each of the
r L + 1 turns (the follower's first step). A teacher-only trace: the teacher decodes its L0 tokens. Prompts
are left out of both (a few hundred tokens against traces of 14,602 and 22,196; in tessy both models read
it, which would add 2 x 8.2B x prompt tokens).

    .venv/bin/python benchmarks/paper_extrapolation.py benchmarks/results/cost_hf_cut_while_decoding.json \
        --out benchmarks/results/paper_extrapolation.json
"""

import argparse
import json
from pathlib import Path

PAPER = {"teacher_active": 5.1e9, "student_active": 8.2e9, "boundary_active": 0.6e9,
         "tessy_trace_tokens": 14602, "teacher_only_trace_tokens": 22196}


def rates(tessy: dict) -> dict:
    tokens = tessy["tokens"]
    return {
        "teacher_share": tessy["teacher_token_share"],
        "switches_per_token": tessy["switches"] / tessy["thinking_tokens"],
        "waste_teacher": tokens["teacher"]["decode"] / tokens["teacher"]["kept"] - 1,
        "waste_student": tokens["student"]["decode"] / tokens["student"]["kept"] - 1,
    }


def tessy_flops(r: dict, length: int, teacher: float, student: float, boundary: float, context_tokens: int) -> dict:
    s = r["teacher_share"]
    teacher_decode = s * length * (1 + r["waste_teacher"])
    student_decode = (1 - s) * length * (1 + r["waste_student"])
    turns = r["switches_per_token"] * length + 1
    parts = {
        "teacher_decode": 2 * teacher * teacher_decode,
        "teacher_prefill": 2 * teacher * (1 - s) * length,
        "student_decode": 2 * student * student_decode,
        "student_prefill": 2 * student * s * length,
        "boundary": 2 * boundary * (teacher_decode + student_decode + turns * context_tokens),
    }
    return {**parts, "total": sum(parts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measured", help="a cooperation_cost.py JSON (its tessy arm gives the rates)")
    parser.add_argument("--context-tokens", type=int, default=200, help="the boundary model's window (paper: 200)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    measured = json.loads(Path(args.measured).read_text())
    r = rates(measured["arms"]["tessy"])
    p = PAPER
    tessy = tessy_flops(r, p["tessy_trace_tokens"], p["teacher_active"], p["student_active"], p["boundary_active"],
                        args.context_tokens)
    teacher_only = 2 * p["teacher_active"] * p["teacher_only_trace_tokens"]
    # The floor for any engine: no waste, no boundary model; each token written by one model, read by the other.
    floor = 2 * (p["teacher_active"] + p["student_active"]) * p["tessy_trace_tokens"]
    # The teacher size at which a tessy trace costs what a teacher-only one does (same rates and lengths):
    # tessy is linear in the teacher's parameters, a T + b, and teacher-only is c T.
    zero_teacher = tessy_flops(r, p["tessy_trace_tokens"], 0.0, p["student_active"], p["boundary_active"],
                               args.context_tokens)["total"]
    per_teacher = (tessy["total"] - zero_teacher) / p["teacher_active"]
    break_even = zero_teacher / (2 * p["teacher_only_trace_tokens"] - per_teacher)
    report = {
        "measured": args.measured, "assumptions": {**PAPER, "boundary_context_tokens": args.context_tokens,
                                                   "prompt_tokens": 0, **{f"toy_{k}": round(v, 4) for k, v in r.items()}},
        "tessy_flops_per_trace": {k: float(f"{v:.4g}") for k, v in tessy.items()},
        "teacher_only_flops_per_trace": float(f"{teacher_only:.4g}"),
        "tessy_over_teacher_only": round(tessy["total"] / teacher_only, 3),
        # The same with the boundary model reading each token once: a boundary KV cache kept per sequence
        # across turns (not built; the follower reads its window again at each turn's start).
        "tessy_over_teacher_only_boundary_reads_once": round(
            tessy_flops(r, p["tessy_trace_tokens"], p["teacher_active"], p["student_active"], p["boundary_active"],
                        0)["total"] / teacher_only, 3),
        "floor_without_waste_or_boundary": float(f"{floor:.4g}"),
        "floor_over_teacher_only": round(floor / teacher_only, 3),
        "break_even_teacher_active_parameters": float(f"{break_even:.3g}"),
        # where the floor (no waste, no boundary model) meets teacher-only: A_T L0 = (A_T + A_S) L
        "break_even_teacher_active_parameters_at_the_floor": float(f"{p['student_active'] * p['tessy_trace_tokens'] / (p['teacher_only_trace_tokens'] - p['tessy_trace_tokens']):.3g}"),
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
