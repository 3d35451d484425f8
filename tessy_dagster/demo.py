"""`make demo`: materialize the whole asset graph through Dagster, every arm, then print the comparison.

Each materialization (one asset, one partition) is a `dagster asset materialize` run against the code location,
so every run lands in DAGSTER_HOME and shows in the UI (`make ui`). The demo reads the asset graph from the code
location and starts a run as soon as its upstream runs have succeeded, as many at once as the machine has cores
(`--jobs`) and one per asset at a time: the teacher and the student train side by side, the references are scored
while the arms are still being built, and one arm's steps follow the other's as in a pipeline. Each run's torch
gets the cores divided by the runs (OMP_NUM_THREADS: one thread each on two cores). A failed run (an arm blocked
by its drift check) is reported, what depends on it is skipped, and the rest goes on.

Everything Dagster and the steps print goes to the log file (`--log`, default $TESSY_HOME/demo.log), each line
behind the name of its run; the terminal shows one line per materialization, with its progress while it runs
(tessy_dagster/console.py). At the end it prints the arm comparison (`arm_comparison`'s comparison.md) where the
code location has that asset, else the scores table.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .console import Console, StepView, label_of, step_message
from .settings import REFERENCE_MODELS, load_settings
from .storage import MANIFEST, artifact_dir, read_manifest, tessy_home

# Dagster's console at INFO (its DEBUG lines are events the UI shows better); one process per run: the in-process
# executor runs the single asset in the CLI process instead of spawning a worker to import the code location again.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}, "execution": {"config": {"in_process": {}}}}
# Two warnings Dagster 1.13 prints on every run, neither about this project: the CLI command is marked superseded
# by `dg launch` (the `dg` CLI is not a dependency here), and Pipes' own client calls a preview function. Each is
# matched by the start of its message (python -W cannot name Dagster's warning classes: it reads its options
# before site-packages can be imported).
WARNING_FILTERS = ("ignore:Function `asset_materialize_command` is superseded",
                   "ignore:Function `PipesMessageReader.expected_writer_count` is currently in preview")
GRAPH_CODE = """
import json, os
from dagster import DagsterInstance
from tessy_dagster.definitions import defs
if os.environ.get("DAGSTER_HOME"):
    DagsterInstance.get().get_runs(limit=1)  # creates an empty home's tables, before two runs race to do it
graph = defs.resolve_asset_graph()
print(json.dumps([{"asset": key.to_user_string(), "deps": sorted(p.to_user_string() for p in graph.get(key).parent_keys),
                   "partitions": graph.get(key).partitions_def.get_partition_keys() if graph.get(key).partitions_def
                   else None} for key in graph.toposorted_asset_keys if graph.get(key).is_materializable]))
"""
# Which ready run starts first: the one with the most work after it. What a run typically takes in the toy profile on
# one core (CPU seconds, rounded, benchmarks/results/demo_toy_2026-12-03.json); the rest are light.
TYPICAL_SECONDS = {"teacher_model": 350, "student_model": 270, "student_responses": 160, "cooperative_traces": 110,
                   "boundary_model": 60, "student_checkpoint": 60, "benchmark_scores": 40, "boundary_dataset": 35,
                   "sft_corpus": 30}
LIGHT_SECONDS = 10
COMPARISON = ("arm_comparison", "comparison.md")  # the asset whose markdown is the demo's last word, and its file
# (column, suite, path into that suite's summary): the table printed when there is no arm comparison
COLUMNS = (("toy pass@1", "toy", ("pass@1",)), ("1-step", "toy", ("by_difficulty", "1-step", "pass@1")),
           ("2-step", "toy", ("by_difficulty", "2-step", "pass@1")),
           ("3-step", "toy", ("by_difficulty", "3-step", "pass@1")),
           ("teacher markers", "toy", ("teacher_marker_rate",)), ("student markers", "toy", ("student_marker_rate",)))


@dataclass
class Task:
    """One materialization: an asset, or one partition of it, and the tasks it waits for."""
    asset: str
    partition: str | None
    deps: list["Task"] = field(default_factory=list)
    view: StepView | None = None
    chain: float = 0.0  # typical seconds of the longest path from here to the end of the graph: what to start first
    threads: int | None = None
    cpu_seconds: float | None = None

    @property
    def label(self) -> str:
        return label_of(self.asset, self.partition)


def plan(graph: list[dict], scored: tuple[str, ...]) -> list[Task]:
    """Every materialization of the demo in the graph's order. A partitioned asset runs the partitions the demo
    scores (the reference models and the configured arms). A task waits for each upstream asset's task of the same
    partition; an unpartitioned one on either side waits for, or is waited for by, every partition."""
    tasks: list[Task] = []
    by_asset: dict[str, list[Task]] = {}
    for node in graph:
        partitions = [None] if node["partitions"] is None else [p for p in scored if p in node["partitions"]]
        for partition in partitions:
            task = Task(node["asset"], partition)
            task.deps = [up for dep in node["deps"] for up in by_asset.get(dep, [])
                         if partition is None or up.partition is None or up.partition == partition]
            tasks.append(task)
            by_asset.setdefault(node["asset"], []).append(task)
    for task in reversed(tasks):  # children come later in the graph's order
        children = [t for t in tasks if task in t.deps]
        task.chain = TYPICAL_SECONDS.get(task.asset, LIGHT_SECONDS) + max((c.chain for c in children), default=0.0)
    return tasks


def read_graph(log) -> list[dict]:
    """The code location's materializable assets in dependency order, with their upstream assets and partitions
    (a subprocess: this module never imports Dagster). It also creates the instance's tables in an empty
    DAGSTER_HOME: the first two runs start at once, and two processes creating them race in Dagster's schema
    migration."""
    proc = subprocess.run([sys.executable, "-c", GRAPH_CODE], capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        log("graph", line)
    if proc.returncode:
        raise RuntimeError(f"could not load the code location tessy_dagster.definitions: "
                           f"{(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
    return json.loads(proc.stdout)


def materialize_command(task: Task) -> list[str]:
    command = [sys.executable]
    for warning_filter in WARNING_FILTERS:
        command += ["-W", warning_filter]
    command += ["-m", "dagster", "asset", "materialize", "-m", "tessy_dagster.definitions", "--select", task.asset,
                "--config-json", json.dumps(RUN_CONFIG)]
    return command + (["--partition", task.partition] if task.partition else [])


class Log:
    """The log file: every line of every run, behind its run's label; lines from several runs interleave."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self._file, self._lock = path, open(path, "w", encoding="utf-8"), threading.Lock()

    def __call__(self, label: str, line: str) -> None:
        with self._lock:
            self._file.write(f"[{label}] {line.rstrip()}\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def run_task(task: Task, env: dict, log: Log, console: Console, finished: queue.Queue) -> None:
    """Run one materialization to its end (in its own thread): its output to the log, its progress to the
    console, then its exit status and CPU time (user + system, its children included) to `finished`."""
    proc = subprocess.Popen(materialize_command(task), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", bufsize=1)
    tail: list[str] = []
    for line in proc.stdout:
        log(task.label, line)
        tail = (tail + [line.rstrip()])[-15:]
        message = step_message(line, task.asset)
        if message is not None:
            console.progress(task.view, message, time.monotonic())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its resource usage
    task.cpu_seconds = usage.ru_utime + usage.ru_stime
    finished.put((task, proc.returncode, tail))


def failure_note(tail: list[str]) -> str:
    """The line that says why a run failed: the last error Dagster or Python printed."""
    for line in reversed(tail):
        if any(marker in line for marker in ("Error: ", "Exception: ", "ERROR - ")):
            return line.strip()[:160]
    return "see the log"


def next_task(ready: list[Task], running: list[Task]) -> Task | None:
    """What to start next: the ready task with the most work after it, never a second task of a running asset."""
    busy = {t.asset for t in running}
    return next((t for t in sorted(ready, key=lambda t: -t.chain) if t.asset not in busy), None)


def run_all(tasks: list[Task], jobs: int, log: Log, console: Console, after_each=lambda: None,
            threads: int | None = None) -> None:
    """Start each task once its dependencies have succeeded, `jobs` at a time, the most work after it first, one task
    of an asset at a time (the instance's pools, instance/dagster.yaml, would hold a second one back anyway).
    `after_each` is called when a task has ended."""
    # torch's threads per run: the cores shared among the runs, never more threads than cores (a step that ran on
    # two threads while another shared the cores waited at every parallel region for a thread not running)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    finished: queue.Queue = queue.Queue()
    pending, running, outcome = list(tasks), {}, {}
    while pending or running:
        for task in [t for t in pending if any(outcome.get(d.label) in ("FAILED", "skipped") for d in t.deps)]:
            pending.remove(task)
            outcome[task.label] = "skipped"
            broken = [d.label for d in task.deps if outcome.get(d.label) in ("FAILED", "skipped")]
            console.skip(task.view, f"(needs {', '.join(broken)})")
        ready = [t for t in pending if all(outcome.get(d.label) in ("ok", "reused") for d in t.deps)]
        while len(running) < jobs:
            task = next_task(ready, list(running.values()))
            if task is None:
                break
            ready.remove(task)
            pending.remove(task)
            task.threads = threads
            env = {**os.environ, "OMP_NUM_THREADS": str(task.threads)}
            console.start(task.view, time.monotonic())
            threading.Thread(target=run_task, args=(task, env, log, console, finished), daemon=True).start()
            running[task.label] = task
        if not running:
            break
        try:
            task, code, tail = finished.get(timeout=0.5)
        except queue.Empty:
            console.tick(time.monotonic())
            continue
        del running[task.label]
        console.finish(task.view, time.monotonic(), code == 0, "" if code == 0 else failure_note(tail))
        outcome[task.label] = task.view.status
        after_each()


def _cell(summary: dict, suite: str, path: tuple) -> str:
    value = summary.get(suite, {})
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def read_scores(home: Path, scored: tuple[str, ...]) -> dict:
    """Per scored model or arm, its benchmark_scores summary, where it has been written."""
    paths = {arm: artifact_dir(home, "benchmark_scores", arm) / "summary.json" for arm in scored}
    return {arm: json.loads(path.read_text()) for arm, path in paths.items() if path.exists()}


def scores_table(scores: dict, scored: tuple[str, ...]) -> str:
    """The Markdown table of COLUMNS per scored model or arm (n/a where it has no summary)."""
    rows = [f"| {arm} | " + " | ".join(_cell(scores[arm], suite, keys) if arm in scores else "n/a"
                                      for _, suite, keys in COLUMNS) + " |" for arm in scored]
    header = "| arm | " + " | ".join(c for c, _, _ in COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1)
    return header + "\n" + "\n".join(rows)


def arm_metrics(home: Path, arms: tuple[str, ...]) -> dict:
    """Per arm, the metrics each arm-stage artifact recorded: the traces' correctness and shares, the corpus'
    filter counts and drift means, the fine-tuning's figures."""
    out = {}
    for arm in arms:
        out[arm] = {}
        for asset in ("cooperative_traces", "sft_corpus", "student_checkpoint"):
            folder = artifact_dir(home, asset, arm)
            if (folder / MANIFEST).exists():
                out[arm][asset] = read_manifest(folder)["metrics"]
    return out


def write_report(path: Path, tasks: list[Task], start: float, home: Path, scored: tuple[str, ...],
                 arms: tuple[str, ...]) -> None:
    """The run so far: its wall time, each step's status, start, wall and CPU seconds and torch threads, and the
    scores and arm metrics written by then (rewritten as each step ends, so a stopped demo leaves its record)."""
    steps = [{"step": t.label, "asset": t.asset, "partition": t.partition, "status": t.view.status,
              "start_seconds": round(t.view.started - start, 1) if t.view.started is not None else None,
              "wall_seconds": round(t.view.ended - t.view.started, 1) if t.view.ended is not None else None,
              "cpu_seconds": round(t.cpu_seconds, 1) if t.cpu_seconds is not None else None,
              "torch_threads": t.threads} for t in tasks]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wall_seconds": round(time.monotonic() - start, 1),
                                "status": {t.label: t.view.status for t in tasks}, "steps": steps,
                                "scores": read_scores(home, scored), "arms": arm_metrics(home, arms)}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=None, help="write the wall time, each step's times and the scores here")
    parser.add_argument("--log", default=None, help="the full log (default: $TESSY_HOME/demo.log)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="materializations at once (the cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: the cores divided by --jobs; set it when several "
                             "demos share the machine)")
    args = parser.parse_args(argv)
    home = tessy_home()
    profile = os.environ.get("TESSY_PROFILE", "toy")
    arms = load_settings(profile, os.environ.get("TESSY_SETTINGS") or None).cooperate.arms
    scored = REFERENCE_MODELS + arms
    log = Log(Path(args.log) if args.log else home / "demo.log")
    console = Console(log=lambda line: log("demo", line))
    start = time.monotonic()
    try:
        tasks = plan(read_graph(log), scored)
    except RuntimeError as err:
        console.say(f"{err}\nfull log: {log.path}")
        return 1
    width = max(len(t.label) for t in tasks)
    console.label_width = width
    for task in tasks:
        task.view = StepView(task.label)
    console.say(f"TESSY demo, profile {profile}: {len(tasks)} materializations, up to {args.jobs} at a time "
                f"(arms: {', '.join(arms)})")
    console.say(f"full log: {log.path}\n")

    def report() -> None:
        if args.report:
            write_report(Path(args.report), tasks, start, home, scored, arms)

    try:
        run_all(tasks, max(1, args.jobs), log, console, after_each=report, threads=args.threads)
    except KeyboardInterrupt:  # the runs got the same SIGINT from the terminal, and stop their steps
        console.say(f"\ninterrupted; full log: {log.path}")
        return 130
    wall = time.monotonic() - start
    comparison_task = next((t for t in tasks if t.asset == COMPARISON[0]), None)
    comparison_file = artifact_dir(home, COMPARISON[0]) / COMPARISON[1]
    console.say(f"\nTESSY demo (profile {profile}), wall time {wall / 60:.1f} min; full log: {log.path}\n")
    if comparison_task and comparison_task.view.status in ("ok", "reused") and comparison_file.exists():
        console.say(comparison_file.read_text().rstrip())
    else:
        console.say(scores_table(read_scores(home, scored), scored))
    report()
    log.close()
    return 0 if all(t.view.status in ("ok", "reused") for t in tasks) else 1


if __name__ == "__main__":
    sys.exit(main())
