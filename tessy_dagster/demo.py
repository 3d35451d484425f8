"""`make demo`: materialize the whole asset graph through Dagster, every arm, then print the scores table.

Runs the `dagster asset materialize` CLI against the code location, so every run lands in DAGSTER_HOME
and shows in the UI (`make ui`). The inputs are built by the multiprocess executor, so the teacher and
the student train side by side, one core each. A blocked arm (its drift check failed) is reported, and
the other arms go on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .settings import REFERENCE_MODELS, load_settings
from .storage import artifact_dir, tessy_home

UNPARTITIONED = "prompts,benchmark,teacher_model,student_model,boundary_dataset,boundary_model,student_responses"
ARM_ASSETS = "cooperative_traces,sft_corpus,student_checkpoint"
# (column, suite, path into that suite's summary)
COLUMNS = (("toy pass@1", "toy", ("pass@1",)), ("1-step", "toy", ("by_difficulty", "1-step", "pass@1")),
           ("2-step", "toy", ("by_difficulty", "2-step", "pass@1")),
           ("3-step", "toy", ("by_difficulty", "3-step", "pass@1")),
           ("teacher markers", "toy", ("teacher_marker_rate",)), ("student markers", "toy", ("student_marker_rate",)),
           ("HumanEval pass@1", "humaneval", ("pass@1",)),
           ("HumanEval prompts over context", "humaneval", ("prompt_too_long",)))


def _cell(summary: dict, suite: str, path: tuple) -> str:
    value = summary.get(suite, {})
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _materialize(select: str, partition: str | None) -> bool:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "tessy_dagster.definitions",
               "--select", select] + (["--partition", partition] if partition else [])
    label = f"{select}" + (f" [{partition}]" if partition else "")
    print(f"\n=== materializing {label}", flush=True)
    start = time.monotonic()
    ok = subprocess.run(command).returncode == 0
    print(f"=== {label}: {'ok' if ok else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True)
    return ok


def scores_table(home: Path, scored: tuple[str, ...]) -> tuple[str, dict]:
    rows, data = [], {}
    for arm in scored:
        path = artifact_dir(home, "benchmark_scores", arm) / "summary.json"
        if not path.exists():
            rows.append(f"| {arm} | " + " | ".join("n/a" for _ in COLUMNS) + " |")
            continue
        summary = json.loads(path.read_text())
        data[arm] = summary
        rows.append(f"| {arm} | " + " | ".join(_cell(summary, suite, keys) for _, suite, keys in COLUMNS) + " |")
    header = "| arm | " + " | ".join(c for c, _, _ in COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1)
    return header + "\n" + "\n".join(rows), data


def arm_metrics(home: Path, arms: tuple[str, ...]) -> dict:
    """Per arm, the metrics each arm-stage artifact recorded: the traces' correctness and shares, the corpus'
    filter counts and drift means, the fine-tuning's figures."""
    out = {}
    for arm in arms:
        out[arm] = {}
        for asset in ("cooperative_traces", "sft_corpus", "student_checkpoint"):
            path = artifact_dir(home, asset, arm) / "manifest.json"
            if path.exists():
                out[arm][asset] = json.loads(path.read_text())["metrics"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=None, help="write the wall time and scores as JSON here")
    args = parser.parse_args(argv)
    home = tessy_home()
    arms = load_settings(os.environ.get("TESSY_PROFILE", "toy"), os.environ.get("TESSY_SETTINGS") or None).cooperate.arms
    scored = REFERENCE_MODELS + arms
    start = time.monotonic()
    status = {"inputs_and_boundary": _materialize(UNPARTITIONED, None)}
    if not status["inputs_and_boundary"]:
        print("the inputs or the boundary model failed; see the Dagster logs above", file=sys.stderr)
        return 1
    for arm in arms:
        status[arm] = _materialize(ARM_ASSETS, arm)
    for arm in scored:
        if arm in arms and not status[arm]:
            print(f"=== skipping benchmark_scores [{arm}]: its arm did not reach a checkpoint", flush=True)
            continue
        status[f"scores_{arm}"] = _materialize("benchmark_scores", arm)
    wall = time.monotonic() - start
    table, data = scores_table(home, scored)
    print(f"\nTESSY demo (profile {os.environ.get('TESSY_PROFILE', 'toy')}), wall time {wall / 60:.1f} min\n")
    print(table)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps({"wall_seconds": round(wall, 1), "status": status, "scores": data,
                                                 "arms": arm_metrics(home, arms)}, indent=2))
    return 0 if all(status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
