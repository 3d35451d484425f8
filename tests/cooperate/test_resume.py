"""A trace run killed with SIGKILL and started again writes every prompt exactly once."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from tessy_dagster.storage import read_manifest, work_dir


def _params(micro_world, micro, out_dir):
    inputs = {name: {"dir": str(micro_world[key]), "digest": name}
              for name, key in (("prompts", "prompts"), ("teacher_model", "teacher"), ("student_model", "student"),
                                ("boundary_model", "boundary"))}
    settings = micro.cooperate.model_copy(update={"shard_size": 2}).model_dump()
    return {"out_dir": str(out_dir), "inputs": inputs, "settings": settings, "code_version": "test",
            "arm": "tessy", "context_tokens": micro.boundary.context_tokens, "threads": 1}


def _start(params, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    return subprocess.Popen([sys.executable, "-m", "tessy_dagster.steps.cooperative_traces", "--params",
                             json.dumps(params)], stdout=log, stderr=subprocess.STDOUT, env=env)


def test_a_killed_run_resumes_and_writes_every_prompt_exactly_once(micro_world, micro, tmp_path):
    out = tmp_path / "cooperative_traces" / "tessy"
    params = _params(micro_world, micro, out)
    shards = work_dir(out, params["inputs"], params["settings"], params["code_version"])
    with open(tmp_path / "first.log", "w") as log:
        first = _start(params, log)
        deadline = time.monotonic() + 300
        while not list(shards.glob("shard-00001.parquet")) and first.poll() is None:
            assert time.monotonic() < deadline, "no second shard after 300 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    assert not out.exists()  # nothing half-written in place
    finished = sorted(p.name for p in shards.glob("shard-*.parquet"))
    assert 2 <= len(finished) < 4  # 8 prompts, 4 shards: killed part way

    with open(tmp_path / "second.log", "w") as log:
        second = _start(params, log)
        assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    assert f"resuming: {len(finished)} of 4 shards" in (tmp_path / "second.log").read_text()
    rows = pq.read_table(out / "traces.parquet").to_pylist()
    prompts = pq.read_table(micro_world["prompts"] / "prompts.parquet").column("problem_id").to_pylist()
    assert sorted(r["prompt_id"] for r in rows) == sorted(prompts)
    assert read_manifest(out)["metrics"]["traces"] == len(prompts)
    assert not shards.exists()  # the work folder goes once the artifact is in place
