"""Incremental synthesis (cooperate/carry_over.py): a rerun over a grown prompt set generates only the prompts
whose trace inputs changed and carries every other row over; the result has a full rebuild's rows and
provenance. Runs the heavy steps' own `build` inside `build_artifact`, as `run_step` does, on the micro models."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessy_dagster import schemas
from tessy_dagster.cooperate.carry_over import prompt_seed
from tessy_dagster.cooperate.run import write_traces
from tessy_dagster.steps import cooperative_traces, student_responses
from tessy_dagster.storage import build_artifact, digest_path, read_manifest, work_dir, write_table

OLD = 5  # the first run's prompts; the micro world has 8
PROVENANCE = ("prompt_id", "arm", "seed", "sampling", "teacher_digest", "student_digest", "boundary_digest",
              "trace_key", "sample")


@pytest.fixture(scope="module")
def prompt_rows(micro_world):
    rows = sorted(pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist(), key=lambda r: r["problem_id"])
    assert len(rows) == 8
    return rows


def _prompts(folder, rows):
    """A prompts artifact folder holding `rows`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_table(pa.Table.from_pylist(rows, schema=schemas.PROMPTS), folder / "prompts.parquet", schemas.PROMPTS)
    return folder


def _params(micro_world, micro, prompts_dir, out, *, teacher_digest="t", arm="tessy", **update):
    models = {"teacher_model": ("teacher", teacher_digest), "student_model": ("student", "s"),
              "boundary_model": ("boundary", "b")}
    inputs = {"prompts": {"dir": str(prompts_dir), "digest": digest_path(prompts_dir / "prompts.parquet")}}
    inputs.update({name: {"dir": str(micro_world[key]), "digest": digest} for name, (key, digest) in models.items()})
    settings = micro.cooperate.model_copy(update=update).model_dump()
    return {"out_dir": str(out), "inputs": inputs, "settings": settings, "code_version": "test", "arm": arm,
            "context_tokens": micro.boundary.context_tokens, "threads": 1}


def _build(step, params):
    """What `run_step` does around a step's build: the work folder, the atomic artifact, its manifest."""
    params = dict(params, work_dir=str(work_dir(params["out_dir"], params["inputs"], params["settings"],
                                                 params["code_version"])))
    lines = []
    manifest = build_artifact(params["out_dir"], inputs=params["inputs"], settings=params["settings"],
                              code_version=params["code_version"],
                              build=lambda tmp: step.build(params, tmp, lines.append))
    shutil.rmtree(params["work_dir"], ignore_errors=True)
    return manifest["metrics"], lines


def _traces(folder):
    return pq.read_table(folder / "traces.parquet").to_pylist()


def _provenance(rows):
    return [tuple(r[c] for c in PROVENANCE) for r in rows]


def _grow(micro_world, micro, prompt_rows, root, **update):
    """Traces of the first OLD prompts, then of all 8 in the same place, then all 8 from scratch elsewhere."""
    old_prompts, grown_prompts = _prompts(root / "old", prompt_rows[:OLD]), _prompts(root / "grown", prompt_rows)
    out, full = root / "cooperative_traces" / "tessy", root / "full" / "tessy"
    _build(cooperative_traces, _params(micro_world, micro, old_prompts, out, **update))
    old = _traces(out)
    metrics, lines = _build(cooperative_traces, _params(micro_world, micro, grown_prompts, out, **update))
    full_metrics, _ = _build(cooperative_traces, _params(micro_world, micro, grown_prompts, full, **update))
    return {"old": old, "rows": _traces(out), "metrics": metrics, "lines": lines, "out": out,
            "prompts": grown_prompts, "full": _traces(full), "full_metrics": full_metrics}


@pytest.fixture(scope="module")
def grown(micro_world, micro, prompt_rows, tmp_path_factory):
    return _grow(micro_world, micro, prompt_rows, tmp_path_factory.mktemp("grown"))


def test_a_grown_prompt_set_generates_only_the_new_prompts(grown, prompt_rows):
    metrics, lines = grown["metrics"], grown["lines"]
    assert (metrics["generated"], metrics["carried_over"], metrics["traces"]) == (8 - OLD, OLD, 8)
    assert any(f"carry-over: {OLD} of 8 prompts carried over" in line
               and f"generating {8 - OLD} ({8 - OLD} new, 0 whose inputs changed)" in line for line in lines)
    assert any(f"shard 1/1 written ({8 - OLD} traces" in line for line in lines)
    by_id = {r["prompt_id"]: r for r in grown["rows"]}
    assert [r["prompt_id"] for r in grown["rows"]] == [r["problem_id"] for r in prompt_rows]
    for old in grown["old"]:  # every column of a carried-over row as it was written
        assert by_id[old["prompt_id"]] == old
    assert read_manifest(grown["out"])["metrics"]["generated"] == 8 - OLD


def test_the_incremental_result_has_a_full_rebuilds_rows_and_provenance(grown, micro):
    assert (grown["full_metrics"]["generated"], grown["full_metrics"]["carried_over"]) == (8, 0)
    assert _provenance(grown["rows"]) == _provenance(grown["full"])
    # the seed is the prompt's own, from the run's seed and its id: no two prompts share one
    assert all(r["seed"] == prompt_seed(micro.cooperate.seed, r["prompt_id"]) for r in grown["rows"])
    assert len({r["seed"] for r in grown["rows"]}) == 8 and len({r["trace_key"] for r in grown["rows"]}) == 8


def test_with_greedy_decoding_the_incremental_result_equals_a_full_rebuild(micro_world, micro, prompt_rows,
                                                                            tmp_path):
    # temperature 0: a trace depends on its prompt alone, not on the prompts drawn with it (with sampling, the
    # hf backend draws a batch from one RNG, so only the provenance above is a full rebuild's)
    greedy = _grow(micro_world, micro, prompt_rows, tmp_path,
                   sampling=micro.cooperate.sampling.model_copy(update={"temperature": 0.0}))
    assert greedy["metrics"]["generated"] == 8 - OLD
    assert greedy["rows"] == greedy["full"]


def _rerun(grown, micro_world, micro, tmp_path, prompt_rows=None, **params):
    """Rebuild a copy of the grown artifact with other prompts, models or settings."""
    out = tmp_path / "cooperative_traces" / "tessy"
    shutil.copytree(grown["out"], out)
    prompts = _prompts(tmp_path / "prompts", prompt_rows) if prompt_rows else grown["prompts"]
    metrics, lines = _build(cooperative_traces, _params(micro_world, micro, prompts, out, **params))
    return metrics, lines, _traces(out)


def test_a_changed_prompt_text_regenerates_just_that_prompt(grown, micro_world, micro, prompt_rows, tmp_path):
    changed = [dict(r) for r in prompt_rows]
    changed[2]["prompt"] += " Answer briefly."
    metrics, lines, rows = _rerun(grown, micro_world, micro, tmp_path, changed)
    assert (metrics["generated"], metrics["carried_over"]) == (1, 7)
    assert any("generating 1 (0 new, 1 whose inputs changed)" in line for line in lines)
    before = {r["prompt_id"]: r for r in grown["rows"]}
    for i, row in enumerate(rows):
        if i == 2:
            assert row["prompt"] == changed[2]["prompt"] and row["trace_key"] != before[row["prompt_id"]]["trace_key"]
            assert row["seed"] == before[row["prompt_id"]]["seed"]  # the seed follows the id, not the text
        else:
            assert row == before[row["prompt_id"]]


@pytest.mark.parametrize("change", [{"teacher_digest": "another teacher"}, {"max_answer_tokens": 20}])
def test_a_changed_model_or_generation_setting_regenerates_every_prompt(grown, micro_world, micro, tmp_path,
                                                                       change):
    metrics, lines, rows = _rerun(grown, micro_world, micro, tmp_path, **change)
    assert (metrics["generated"], metrics["carried_over"]) == (8, 0)
    assert any("carry-over: 0 of 8 prompts carried over" in line and "(0 new, 8 whose inputs changed)" in line
               for line in lines)
    assert not {r["trace_key"] for r in rows} & {r["trace_key"] for r in grown["rows"]}


def test_settings_that_only_schedule_the_work_carry_every_row_over(grown, micro_world, micro, tmp_path):
    metrics, lines, rows = _rerun(grown, micro_world, micro, tmp_path, shard_size=1, batch_size=3, judge_workers=1,
                                  arms=("tessy",))
    assert (metrics["generated"], metrics["carried_over"]) == (0, 8)
    assert rows == grown["rows"] and not any("shard" in line for line in lines)
    assert metrics["answer_pass_rate"] == grown["metrics"]["answer_pass_rate"]  # metrics over the carried rows


def _unreadable(path):
    path.write_bytes(b"not parquet")


def _older(path):
    pq.write_table(pq.read_table(path).drop_columns(["trace_key"]), path)


@pytest.mark.parametrize("damage, said", [(_unreadable, "cannot be read"),
                                          (_older, "lacks the column(s) trace_key (written by an older version)")])
def test_an_unreadable_or_older_previous_file_regenerates_every_prompt(grown, micro_world, micro, tmp_path, damage,
                                                                       said):
    out = tmp_path / "cooperative_traces" / "tessy"
    shutil.copytree(grown["out"], out)
    damage(out / "traces.parquet")
    metrics, lines = _build(cooperative_traces, _params(micro_world, micro, grown["prompts"], out))
    assert (metrics["generated"], metrics["carried_over"]) == (8, 0)
    assert any(said in line and "generating all 8 prompts" in line for line in lines)
    assert _provenance(_traces(out)) == _provenance(grown["full"])


def test_a_shard_planned_for_other_prompts_is_drawn_again(grown, micro_world, micro, tmp_path):
    # the work folder holds a shard 0 from another plan (the artifact it carried over from was replaced since)
    work = tmp_path / "work"
    work.mkdir()
    write_table(pa.Table.from_pylist(grown["old"][:3], schema=schemas.TRACES), work / "shard-00000.parquet",
                schemas.TRACES)
    previous = tmp_path / "previous.parquet"  # the first run's artifact
    write_table(pa.Table.from_pylist(grown["old"], schema=schemas.TRACES), previous, schemas.TRACES)
    lines = []
    metrics = write_traces(arm="tessy", teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                           boundary_dir=micro_world["boundary"], prompts_path=grown["prompts"] / "prompts.parquet",
                           digests={"teacher_model": "t", "student_model": "s", "boundary_model": "b"},
                           settings=micro.cooperate, context_tokens=micro.boundary.context_tokens, out_dir=tmp_path,
                           work_dir=work, previous=previous, code_version="test",
                           progress=lines.append)
    assert (metrics["generated"], metrics["carried_over"]) == (8 - OLD, OLD)
    assert not any("resuming" in line for line in lines)
    assert _provenance(_traces(tmp_path)) == _provenance(grown["full"])


def test_student_responses_sample_only_the_new_prompts(micro_world, micro, prompt_rows, tmp_path):
    out = tmp_path / "student_responses" / "all"
    for rows in (prompt_rows[:OLD], prompt_rows):
        params = _params(micro_world, micro, _prompts(tmp_path / f"prompts-{len(rows)}", rows), out)
        del params["inputs"]["boundary_model"], params["arm"]
        metrics, lines = _build(student_responses, params)
    for sample in ("reference", "calibration"):
        assert (metrics[f"{sample}_generated"], metrics[f"{sample}_carried_over"]) == (8 - OLD, OLD)
        assert len(_traces(out / sample)) == 8
    assert sum(f"carry-over: {OLD} of 8 prompts carried over" in line for line in lines) == 2
    reference, calibration = _traces(out / "reference"), _traces(out / "calibration")
    assert all(r["seed"] != c["seed"] and r["trace_key"] != c["trace_key"] for r, c in zip(reference, calibration))
    assert 0.0 < metrics["self_similarity"] <= 1.0


def _start(params, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    return subprocess.Popen([sys.executable, "-m", "tessy_dagster.steps.cooperative_traces", "--params",
                             json.dumps(params)], stdout=log, stderr=subprocess.STDOUT, env=env)


def test_a_killed_incremental_run_resumes(grown, micro_world, micro, prompt_rows, tmp_path):
    """SIGKILL part way through generating the new prompts; the rerun keeps the finished shards and carries the
    old rows over again: every prompt exactly once."""
    out = tmp_path / "cooperative_traces" / "tessy"
    first_prompts = _prompts(tmp_path / "first", prompt_rows[:4])
    _build(cooperative_traces, _params(micro_world, micro, first_prompts, out, shard_size=1))
    before = _traces(out)
    params = _params(micro_world, micro, grown["prompts"], out, shard_size=1)  # 4 new prompts, 4 shards
    shards = work_dir(out, params["inputs"], params["settings"], params["code_version"])
    with open(tmp_path / "first.log", "w") as log:
        first = _start(params, log)
        deadline = time.monotonic() + 300
        while not (shards / "shard-00001.parquet").exists() and first.poll() is None:
            assert time.monotonic() < deadline, "no second shard after 300 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    assert _traces(out) == before  # the artifact in place is untouched
    finished = len(list(shards.glob("shard-*.parquet")))
    assert 2 <= finished < 4

    with open(tmp_path / "second.log", "w") as log:
        second = _start(params, log)
        assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert "carry-over: 4 of 8 prompts carried over" in log and f"resuming: {finished} of 4 shards" in log
    metrics = read_manifest(out)["metrics"]
    assert (metrics["generated"], metrics["carried_over"], metrics["traces"]) == (4, 4, 8)
    rows = _traces(out)
    assert [r["prompt_id"] for r in rows] == [r["problem_id"] for r in prompt_rows]
    assert [r for r in rows if r["prompt_id"] in {b["prompt_id"] for b in before}] == before
    assert _provenance(rows) == _provenance(grown["full"])
    assert not shards.exists()
