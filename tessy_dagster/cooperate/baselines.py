"""The paper's baselines that are not one pass of the engine (TESSY §3.4, Table 1), built from its passes.

- `teacher_mix`: teacher and student samples mixed 1:1. Each prompt gets one trace, written by the teacher
  alone (`teacher_only`) or by the student alone (`student_only`), the writer drawn from the prompt's seed, so
  about half the prompts each and the corpus as large as every other arm's (the paper does not say whether its
  mix doubled the corpus; the same size keeps the SFT the same for every arm).
- `teacher_score`: rejection sampling by the teacher. The student writes `score_candidates` complete responses
  per prompt, each drawn with its own seed; the teacher reads each in its own chat template and the candidate
  with the lowest mean negative log-likelihood per token (thinking and answer) is kept. Mean per token, not the
  sum: a sum would prefer the shortest candidate whatever it says.
- `teacher_reference`: self-distillation. The teacher writes its response (`teacher_only`); the student then
  writes its own, prompted with the task and the teacher's response as a reference (`reference_prompt`); the
  row keeps the task's own prompt, which is what the student is fine-tuned on.

Every other arm is one plan of the engine (`ARM_PLAN`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from ..settings import CooperateSettings
from .carry_over import prompt_seed
from .engine import ARM_PLAN, CooperativeEngine

COMPOSITE_ARMS = ("teacher_mix", "teacher_score", "teacher_reference")


def uses_boundary(arm: str) -> bool:
    """Whether the arm's traces depend on the boundary model (only cooperative thinking consults it)."""
    return arm in ARM_PLAN and ARM_PLAN[arm][0] == "cooperative"


def draw_arm(engine: CooperativeEngine, arm: str, prompts: list[tuple[str, str]], *, seed: int,
             settings: CooperateSettings, teacher_dir, progress: Callable[[str], None] = print) -> list[dict]:
    """One row per prompt (the engine's order for a plain plan, prompt order otherwise): the arm's trace.
    `seed` is what torch was seeded with for this draw (teacher_score seeds each further candidate from it)."""
    if arm in ARM_PLAN:
        return engine.run(arm, prompts)
    if arm == "teacher_mix":
        writers = {pid: "teacher_only" if prompt_seed(settings.seed, pid) % 2 == 0 else "student_only"
                   for pid, _ in prompts}
        rows = {}
        for plan in ("teacher_only", "student_only"):
            part = [(pid, text) for pid, text in prompts if writers[pid] == plan]
            if part:
                rows.update((r["prompt_id"], r) for r in engine.run(plan, part))
        return [_as_arm(rows[pid], arm) for pid, _ in prompts]
    if arm == "teacher_score":
        return _teacher_score(engine, prompts, seed, settings, teacher_dir, progress)
    if arm == "teacher_reference":
        references = {r["prompt_id"]: r for r in engine.run("teacher_only", prompts)}
        asked = [(pid, reference_prompt(settings, text, references[pid])) for pid, text in prompts]
        rows = {r["prompt_id"]: r for r in engine.run("student_only", asked)}
        return [_as_arm(rows[pid], arm, prompt=text) for pid, text in prompts]
    raise ValueError(f"unknown arm {arm!r}; choose one of {sorted(ARM_PLAN) + list(COMPOSITE_ARMS)}")


def reference_prompt(settings: CooperateSettings, prompt: str, reference: dict) -> str:
    """The student's prompt in teacher_reference: the task and the teacher's response (thinking, then answer)."""
    response = f"{reference['thinking'].strip()}\n{(reference['answer'] or '').strip()}".strip()
    return settings.reference_prompt.format(prompt=prompt, reference=response)


def _as_arm(row: dict, arm: str, **fields) -> dict:
    return {**row, "arm": arm, **fields}


def _teacher_score(engine, prompts, seed, settings, teacher_dir, progress) -> list[dict]:
    import torch

    candidates: list[list[dict]] = []
    for c in range(settings.score_candidates):
        if c:  # the first candidate is drawn with the draw's own seed, as any arm's sample
            torch.manual_seed(seed + c)
        candidates.append(engine.run("student_only", prompts))
        progress(f"teacher_score: candidate {c + 1}/{settings.score_candidates} written for {len(prompts)} prompts")
    candidates = [[by_id[pid] for pid, _ in prompts] for by_id in ({r["prompt_id"]: r for r in rows}
                                                                      for rows in candidates)]
    chosen = choose_by_teacher(teacher_dir, candidates)
    progress(f"teacher_score: the teacher picked among {len(candidates)} candidates for {len(prompts)} prompts "
             f"(candidate 1 kept for {chosen.count(0)})")
    return [_as_arm(candidates[c][i], "teacher_score") for i, c in enumerate(chosen)]


def choose_by_teacher(teacher_dir, candidates: list[list[dict]]) -> list[int]:
    """Per prompt, which candidate the teacher finds likeliest: `candidates[c][i]` is candidate c's row for prompt
    i; the lowest mean NLL per token of its thinking and answer, read in the teacher's own chat template, wins
    (ties: the earlier candidate)."""
    from ..corpus.drift_metrics import CAPABILITY, student_nll

    flat = [row for rows in candidates for row in rows]
    model, local = _scoring_model(str(teacher_dir))
    # the NLL of any model over a trace (the drift metrics' function, here with the teacher)
    kinds = [[CAPABILITY] * len(r["thinking"]) for r in flat]
    scores = [_mean_nll(m) for m in student_nll(teacher_dir, flat, kinds, model=model, local=local)]
    n = len(candidates[0])
    return [min(range(len(candidates)), key=lambda c: (scores[c * n + i], c)) for i in range(n)]


@lru_cache(maxsize=1)
def _scoring_model(teacher_dir: str):
    """The teacher as a causal LM and its tokenizer, loaded once per process (a run scores shard after shard)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .generation import LocalTokenizer

    return (AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval(), LocalTokenizer(teacher_dir))


def _mean_nll(metrics: dict) -> float:
    """The mean NLL per token over a response's thinking and answer (inf when it has no tokens)."""
    n = metrics["n_thinking_tokens"] + metrics["n_answer_tokens"]
    total = sum((metrics[f"nll_{part}"] or 0.0) * metrics[f"n_{part}_tokens"] for part in ("thinking", "answer"))
    return total / n if n else float("inf")
