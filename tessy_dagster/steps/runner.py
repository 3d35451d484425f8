"""What every heavy step shares: arguments, progress, and reporting back through Dagster Pipes.

A step is `python -m tessy_dagster.steps.NAME --params '<json>'` (or `--params @file.json`). Under
Dagster it reports its materialization through Pipes; run by hand it prints the manifest instead.

Progress lines go one way, so nothing shows twice: under Dagster as Pipes log messages, which Dagster keeps in
the run's event log under the asset's step and prints on its console (`make demo` reads them there: the form of
a line it draws a bar from is in `tessy_dagster/console.py`); run by hand, to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from ..storage import build_artifact, work_dir
from ..train.nodes import node_rank


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_params(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Run one heavy TESSY step.")
    parser.add_argument("--params", required=True, help="JSON object, or @path to a JSON file")
    args = parser.parse_args(argv)
    raw = Path(args.params[1:]).read_text() if args.params.startswith("@") else args.params
    params = json.loads(raw)
    for key in ("out_dir", "inputs", "settings", "code_version"):
        if key not in params:
            raise SystemExit(f"--params: missing field {key!r}")
    return params


def run_step(build: Callable[[dict, Path, Callable[[str], None]], dict], argv: list[str] | None = None) -> dict:
    """Parse params, build the artifact atomically with `build(params, tmp_dir, progress) -> metrics`,
    and report the result: metrics as metadata, the content digest as the data version."""
    _quiet_libraries()
    from dagster_pipes import PipesContext, open_dagster_pipes

    params = parse_params(argv)
    if node_rank() > 0:
        return _worker_node(build, params)
    with open_dagster_pipes() as pipes:
        threads = params.get("threads")
        if threads:
            import torch

            torch.set_num_threads(int(threads))

        if isinstance(pipes, PipesContext):  # launched by Dagster (else a no-op stand-in)
            progress = pipes.log.info
        else:
            def progress(message: str) -> None:
                print(message, file=sys.stderr, flush=True)

        # Steps that resume (cooperative_traces) keep finished shards here until the artifact is in place.
        params["work_dir"] = str(work_dir(params["out_dir"], params["inputs"], params["settings"],
                                          params["code_version"]))
        manifest = build_artifact(
            params["out_dir"], inputs=params["inputs"], settings=params["settings"],
            code_version=params["code_version"], build=lambda tmp: build(params, tmp, progress),
        )
        shutil.rmtree(params["work_dir"], ignore_errors=True)
        pipes.report_asset_materialization(
            metadata={**manifest["metrics"], "path": str(params["out_dir"]), "digest": manifest["digest"]},
            data_version=manifest["digest"],
        )
    print(json.dumps({"out_dir": params["out_dir"], "digest": manifest["digest"], "metrics": manifest["metrics"]}))
    return manifest


def _worker_node(build, params: dict) -> dict:
    """A pod other than 0 of a multi-node SFT Job: it runs its share of the ranks and writes nothing of the
    artifact (node 0 does, and reports through Pipes), so it works in a scratch folder of its own."""
    import tempfile

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="tessy-worker-node-") as scratch:
        params["work_dir"] = scratch
        build(params, Path(scratch), progress)
    return {}
