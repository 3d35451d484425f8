"""The paper's Table 1 on the toy world: every arm, through the asset graph, several seeds; JSON and a table.

One seed is a whole world: its own toy teacher and student (trained from that seed), prompts and benchmark
problems, boundary model, sampling seeds and SFT seed. Each seed gets a TESSY_HOME of its own
(`ROOT/seed-N`) and is materialized through Dagster by the demo's runner (`python -m tessy_dagster.demo`:
every asset partition a `dagster asset materialize` run, in that home's DAGSTER_HOME) under the `research`
profile (tessy_dagster/settings.py: every arm, 3-step-heavy prompts, the same SFT for every arm), with a
settings file that sets the seed. Seeds run side by side, one materialization at a time each, one torch
thread each (a seed's graph is mostly a chain, so one seed alone leaves a core idle).

Then, from the artifacts' files (benchmark_scores' summary.json, every arm-stage manifest): per arm and seed
pass@1 overall and per step count, the style markers of its answers' thinking, the corpus the arm trained on
(records, teacher token share, correctness) and its per-span NLL decomposition under the base student
(style / capability spans, answer; teacher-written and student-written style), and the SFT's losses; per arm
the mean and the sample standard deviation over seeds, and per seed the arm's difference from base. A seed
already materialized is reused (the graph reuses unchanged artifacts), so a stopped run is continued by the
same command.

    .venv/bin/python benchmarks/table1.py --root /tmp/table1 --seeds 0 1 2 --out benchmarks/results/table1_toy.json

`--prompts N` and `--sft-epochs E` override the research profile's corpus size and SFT length (the same for
every arm); `--report-only` aggregates what the homes hold without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tessy_dagster.demo import arm_metrics, read_scores  # noqa: E402
from tessy_dagster.settings import ALL_ARMS, REFERENCE_MODELS  # noqa: E402
from tessy_dagster.storage import artifact_dir  # noqa: E402

MODELS = REFERENCE_MODELS + ALL_ARMS  # the rows of the table: the teacher, the base student, each arm's student
# per seed, beside the models: the base student's NLL of its own traces per span kind
OWN = "student_own"
STEP_COUNTS = ("1-step", "2-step", "3-step")
# The paper's Table 1 (GPT-OSS-120B -> Qwen3-8B), pass@1 in %, LCB-V5 / LCB-V6 / LCB-Pro / OJBench
# (../shared/TESSY.md, §6); teacher_answer and teacher_reference as the paper names them.
PAPER = {
    "base": (55.09, 49.58, 25.35, 18.75),
    "teacher_score": (54.55, 48.00, 26.06, 18.32),
    "teacher_reference": (51.50, 43.43, 19.26, 14.22),
    "teacher_answer": (35.33, 33.14, 21.39, 14.01),
    "teacher_think": (47.90, 43.43, 24.36, 12.50),
    "teacher_mix": (45.51, 40.57, 21.95, 11.85),
    "teacher_only": (41.32, 36.57, 22.10, 8.73),
    "tessy": (62.87, 55.43, 36.69, 25.43),
}
PAPER_SUITES = ("LCB-V5", "LCB-V6", "LCB-Pro", "OJBench")
# (name in the JSON, artifact, metric key in its manifest): what each arm's stages recorded
ARM_FIGURES = (
    ("traces_teacher_token_share", "cooperative_traces", "teacher_token_share"),
    ("traces_mean_tokens", "cooperative_traces", "mean_tokens"),
    ("traces_thinking_pass_rate", "cooperative_traces", "thinking_pass_rate"),
    ("traces_answer_pass_rate", "cooperative_traces", "answer_pass_rate"),
    ("corpus_records", "sft_corpus", "records"),
    ("corpus_thinking_right", "sft_corpus", "mean_thinking_passed"),
    ("corpus_answer_right", "sft_corpus", "mean_answer_passed"),
    ("corpus_teacher_marker_rate", "sft_corpus", "mean_teacher_marker_rate"),
    ("corpus_student_marker_rate", "sft_corpus", "mean_student_marker_rate"),
    ("nll_style", "sft_corpus", "mean_nll_style"),
    ("nll_capability", "sft_corpus", "mean_nll_capability"),
    ("nll_answer", "sft_corpus", "mean_nll_answer"),
    ("nll_teacher_style", "sft_corpus", "mean_nll_teacher_style"),
    ("nll_student_style", "sft_corpus", "mean_nll_student_style"),
    ("style_rate", "sft_corpus", "mean_style_rate"),
    ("similarity_to_student", "sft_corpus", "mean_similarity"),
    ("sft_steps", "student_checkpoint", "train_steps"),
    ("sft_first_loss", "student_checkpoint", "first_loss"),
    ("sft_final_loss", "student_checkpoint", "final_loss"),
)


def seed_settings(seed: int, prompts: int | None, sft_epochs: int | None) -> dict:
    """The overrides of one seed: every seed of the world set to it, and the optional size overrides."""
    out = {"toyworld": {"seed": seed}, "boundary": {"seed": seed}, "cooperate": {"seed": seed},
           "sft": {"seed": seed}, "evaluate": {"seed": seed}}
    if prompts:
        out["toyworld"]["n_prompts"] = prompts
    if sft_epochs:
        out["sft"]["epochs"] = sft_epochs
    return out


def start_seed(root: Path, seed: int, prompts, sft_epochs) -> tuple[subprocess.Popen, Path]:
    home = root / f"seed-{seed}"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
    settings = home / "settings.json"
    settings.write_text(json.dumps(seed_settings(seed, prompts, sft_epochs), indent=2))
    env = {**os.environ, "TESSY_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "TESSY_PROFILE": "research",
           "TESSY_SETTINGS": str(settings)}
    console = open(home / "console.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "tessy_dagster.demo", "--jobs", "1", "--threads", "1",
                             "--report", str(home / "run_report.json")], cwd=ROOT, env=env, stdout=console,
                            stderr=subprocess.STDOUT)
    return proc, home


def run_seeds(root: Path, seeds: list[int], prompts, sft_epochs) -> dict:
    started = time.monotonic()
    running = {seed: start_seed(root, seed, prompts, sft_epochs) for seed in seeds}
    codes = {}
    while running:
        time.sleep(30)
        for seed, (proc, home) in list(running.items()):
            if proc.poll() is not None:
                codes[seed] = proc.returncode
                del running[seed]
                print(f"seed {seed}: finished with exit status {proc.returncode} after "
                      f"{(time.monotonic() - started) / 60:.1f} min ({home / 'console.txt'})", flush=True)
        for seed, (_, home) in running.items():
            report = home / "run_report.json"
            if report.exists():
                try:
                    status = json.loads(report.read_text())["status"]
                except (json.JSONDecodeError, KeyError):
                    continue
                done = sum(s in ("ok", "reused") for s in status.values())
                print(f"seed {seed}: {done}/{len(status)} materializations done", flush=True)
    return {"wall_seconds": round(time.monotonic() - started, 1), "exit_status": codes}


def _get(d, *path):
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def seed_figures(home: Path) -> dict:
    """Per scored model: its scores (toy suite) and, for an arm, what its stages recorded."""
    scores = read_scores(home, MODELS)
    stages = arm_metrics(home, ALL_ARMS)
    out = {}
    for model in MODELS:
        entry = {}
        if model in scores:
            toy = scores[model].get("toy", {})
            entry["pass@1"] = toy.get("pass@1")
            for steps in STEP_COUNTS:
                entry[steps] = _get(toy, "by_difficulty", steps, "pass@1")
            for key in ("teacher_marker_rate", "student_marker_rate", "mean_thinking_tokens", "truncation_rate"):
                entry[key] = toy.get(key)
        for name, asset, key in ARM_FIGURES if model in ALL_ARMS else ():
            if asset in stages[model]:
                entry[name] = stages[model][asset].get(key)
        out[model] = entry
    out[OWN] = student_own_nll(home)
    return out


def student_own_nll(home: Path) -> dict:
    """The base student's NLL of its own traces, per span kind (the drift gate's calibration, the same for
    every arm of the seed): what an arm's corpus NLL is measured against."""
    for arm in ALL_ARMS:
        report = artifact_dir(home, "sft_corpus", arm) / "drift_report.json"
        if report.exists():
            columns = json.loads(report.read_text()).get("calibration", {}).get("columns", {})
            return {name: _get(columns, f"nll_{name.split('_', 1)[1]}", "mean")
                    for name in ("nll_style", "nll_capability", "nll_answer")}
    return {}


def seed_cost(home: Path) -> dict:
    """The seed's wall time and its runs' CPU seconds, from the demo runner's report."""
    path = home / "run_report.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    return {"wall_seconds": report["wall_seconds"],
            "cpu_seconds": round(sum(s["cpu_seconds"] or 0 for s in report["steps"]), 1),
            "failed": sorted(label for label, status in report["status"].items() if status not in ("ok", "reused"))}


def _mean_sd(values: list) -> dict:
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return {"n": 0, "mean": None, "sd": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None, "values": values}


def aggregate(per_seed: dict[int, dict]) -> dict:
    """Per model and figure: the mean and sample sd over the seeds that have it; per arm its difference from
    base, seed by seed (paired: the same world), with their mean and sd."""
    out = {}
    for model in MODELS + (OWN,):
        names = sorted({k for figures in per_seed.values() for k in figures.get(model, {})})
        out[model] = {name: _mean_sd([figures.get(model, {}).get(name) for figures in per_seed.values()])
                      for name in names}
        if model not in ("base", OWN):
            for column in ("pass@1",) + STEP_COUNTS:
                diffs = [figures[model][column] - figures["base"][column] for figures in per_seed.values()
                         if isinstance(figures.get(model, {}).get(column), (int, float))
                         and isinstance(figures.get("base", {}).get(column), (int, float))]
                out[model][f"{column} minus base"] = _mean_sd(diffs)
    return out


def _cell(stat: dict, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    sd = f" ± {stat['sd']:.{digits}f}" if stat.get("sd") is not None else ""
    return f"{stat['mean']:.{digits}f}{sd}"


def markdown(summary: dict, n_seeds: int) -> str:
    """The README's table: pass@1 (mean ± sd over seeds) overall and per step count, beside the paper's."""
    head = ("| model | seeds | pass@1 | 1-step | 2-step | 3-step | pass@1 − base | teacher markers | student markers "
            "| corpus NLL style / capability / answer | paper " + " / ".join(PAPER_SUITES) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in MODELS:
        s = summary.get(model, {})
        if not s.get("pass@1", {}).get("n"):
            continue
        nll = " / ".join(_cell(s.get(k, {}), 2) for k in ("nll_style", "nll_capability", "nll_answer"))
        paper = " / ".join(f"{v:.2f}" for v in PAPER[model]) if model in PAPER else "—"
        lines.append(f"| {model} | {s['pass@1']['n']} | {_cell(s['pass@1'])} | "
                     + " | ".join(_cell(s.get(k, {})) for k in STEP_COUNTS)
                     + f" | {_cell(s.get('pass@1 minus base', {})) if model != 'base' else '—'}"
                     + f" | {_cell(s.get('teacher_marker_rate', {}), 2)} | {_cell(s.get('student_marker_rate', {}), 2)}"
                     + f" | {nll if model in ALL_ARMS else '—'} | {paper} |")
    own = summary.get(OWN, {})
    own_nll = " / ".join(_cell(own.get(k, {}), 3) for k in ("nll_style", "nll_capability", "nll_answer"))
    return ("\n".join(lines) + f"\n\nmean ± sample sd over {n_seeds} seeds (toy pass@1, 100 held-out problems a "
            f"step count); corpus NLL: the base student's mean NLL per token of the arm's corpus, per span kind "
            f"(its own traces: {own_nll})")


CORPUS_COLUMNS = (("records", "corpus_records", 0), ("teacher token share", "traces_teacher_token_share", 3),
                  ("thinking right", "corpus_thinking_right", 3), ("answer right", "corpus_answer_right", 3),
                  ("NLL style", "nll_style", 2), ("NLL capability", "nll_capability", 2), ("NLL answer", "nll_answer", 2),
                  ("teacher markers", "corpus_teacher_marker_rate", 2), ("similarity", "similarity_to_student", 3),
                  ("SFT steps", "sft_steps", 0), ("SFT loss first / final", None, 3))


def corpus_markdown(summary: dict) -> str:
    """What each arm trained on (means ± sd over seeds): the corpus' size, author shares, correctness, its
    NLL under the base student per span kind, and the SFT's length and losses."""
    lines = ["| arm | " + " | ".join(c for c, _, _ in CORPUS_COLUMNS) + " |", "|" + "---|" * (len(CORPUS_COLUMNS) + 1)]
    for arm in ALL_ARMS:
        s = summary.get(arm, {})
        if not s.get("corpus_records", {}).get("n"):
            continue
        cells = []
        for _, key, digits in CORPUS_COLUMNS:
            if key is None:
                cells.append(f"{_cell(s.get('sft_first_loss', {}), digits)} / {_cell(s.get('sft_final_loss', {}), digits)}")
            else:
                cells.append(_cell(s.get(key, {}), digits))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="a folder for the seeds' homes (ROOT/seed-N)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prompts", type=int, default=None, help="toyworld.n_prompts (default: the profile's)")
    parser.add_argument("--sft-epochs", type=int, default=None, help="sft.epochs (default: the profile's)")
    parser.add_argument("--report-only", action="store_true", help="aggregate the homes as they are")
    parser.add_argument("--ungated", nargs="*", default=[], metavar="ARM@SEED=HOME",
                        help="a partition the drift gate blocked, trained in a copy of the seed's home (HOME) with "
                             "the failed expectation off: its figures fill the seed's row in the table (marked); "
                             "the means as gated are kept in the JSON as well")
    parser.add_argument("--run-record", default=None,
                        help="with --report-only: an earlier output JSON whose run record (wall time, exit statuses) "
                             "to keep")
    parser.add_argument("--out", required=True, help="the JSON to write")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    run = None if args.report_only else run_seeds(root, args.seeds, args.prompts, args.sft_epochs)
    if run is None and args.run_record:
        run = json.loads(Path(args.run_record).read_text())["run"]
    gated = {seed: seed_figures(root / f"seed-{seed}") for seed in args.seeds}
    per_seed = json.loads(json.dumps(gated))  # a copy, keys as strings like the JSON's
    filled = []
    for spec in args.ungated:
        arm_seed, _, home = spec.partition("=")
        arm, _, seed = arm_seed.partition("@")
        if arm not in ALL_ARMS or seed not in per_seed or not home:
            parser.error(f"--ungated {spec!r}: expected ARM@SEED=HOME with an arm of {list(ALL_ARMS)} and one of "
                         f"the seeds {args.seeds}")
        per_seed[seed][arm] = {**seed_figures(Path(home))[arm], "ungated_home": home}
        filled.append(f"{arm} in seed {seed}")
    summary = aggregate(per_seed)
    table = markdown(summary, len(args.seeds))
    if filled:
        table += (f"; blocked by the drift gate and trained with its failed expectation off (the figures of "
                  f"a copy of the seed's home): {', '.join(filled)}")
    corpus_table = corpus_markdown(summary)
    result = {
        "what": "the paper's Table 1 on the toy world: every arm through the asset graph, research profile",
        "command": "python benchmarks/table1.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores",
        "settings_overrides": {seed: seed_settings(seed, args.prompts, args.sft_epochs) for seed in args.seeds},
        "ungated": args.ungated, "summary_as_gated": aggregate(gated),
        "run": run, "cost": {seed: seed_cost(root / f"seed-{seed}") for seed in args.seeds},
        "per_seed": per_seed, "summary": summary, "table": table, "corpus_table": corpus_table,
        "paper": {"suites": PAPER_SUITES, "pass@1_percent": PAPER},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table + "\n\n" + corpus_table)
    return 0 if run is None or all(code == 0 for code in run["exit_status"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
