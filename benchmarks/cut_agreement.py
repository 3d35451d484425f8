"""Does cutting while decoding write the round engine's traces? Greedy tessy on both engines; writes JSON.

Not a test: a measurement on the models of a `make demo` run (TESSY_HOME, default .tessy/), with the
settings' chunk sizes (k = 5 / 10) for the round engine. Per prompt it compares the thinking text, the spans
exactly, and the spans with the whitespace at their edges dropped (where the whitespace between two writers
goes: a round-engine chunk that ends right after a newline keeps it with its writer, a cut gives it to the
next). tests/cooperate/test_cut_while_decoding.py checks exact agreement with chunks as long as a turn.

    .venv/bin/python benchmarks/cut_agreement.py --prompts 256 --out benchmarks/results/cut_agreement.json
"""

import argparse
import json
import os
from pathlib import Path

from tessy_dagster.boundary.model import BoundaryPredictor
from tessy_dagster.cooperate.engine import CooperativeEngine
from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.settings import SamplingSettings, load_settings
from tessy_dagster.storage import artifact_dir, read_table, tessy_home


def spans(row: dict, loose: bool = False) -> list:
    return [(s["text"].strip() if loose else s["text"], s["author"]) for s in row["spans"]
            if not loose or s["text"].strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("TESSY_PROFILE", "toy"))
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    settings = load_settings(args.profile)
    home = tessy_home()
    prompts = sorted((r["problem_id"], r["prompt"])
                     for r in read_table(artifact_dir(home, "prompts") / "prompts.parquet").to_pylist())[:args.prompts]
    coop = settings.cooperate.model_copy(update={"sampling": SamplingSettings(temperature=0.0),
                                                 "generation": settings.cooperate.generation.model_copy(
                                                     update={"backend": "hf"})})
    rows = {}
    for cut_while_decoding in (False, True):
        models = {role: load_generator(artifact_dir(home, f"{role}_model"), coop.generation, role=role)
                  for role in ("teacher", "student")}
        boundary = BoundaryPredictor(artifact_dir(home, "boundary_model"), context_tokens=settings.boundary.context_tokens,
                                     batch_size=coop.batch_size)
        engine = CooperativeEngine(models, boundary, coop.model_copy(update={"cut_while_decoding": cut_while_decoding}),
                                   {}, progress=lambda m: None)
        rows[cut_while_decoding] = {r["prompt_id"]: r for r in engine.run("tessy", prompts)}
    rounds, cut = rows[False], rows[True]
    report = {
        "prompts": len(prompts), "chunk_tokens": {"student": coop.student_chunk_tokens,
                                                  "teacher": coop.teacher_chunk_tokens},
        "turn_tokens": coop.turn_tokens,
        "same_thinking": sum(cut[p]["thinking"] == r["thinking"] for p, r in rounds.items()),
        "same_spans": sum(spans(cut[p]) == spans(r) for p, r in rounds.items()),
        "same_spans_but_edge_whitespace": sum(spans(cut[p], True) == spans(r, True) for p, r in rounds.items()),
        "switches": {"round": sum(r["n_switches"] for r in rounds.values()),
                     "cut": sum(r["n_switches"] for r in cut.values())},
        "rollback_tokens": {"round": sum(r["rollback_tokens"] for r in rounds.values()),
                            "cut": sum(r["rollback_tokens"] for r in cut.values())},
        "differing_prompts": [p for p, r in rounds.items() if spans(cut[p], True) != spans(r, True)],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
