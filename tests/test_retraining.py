"""Operating the graph: the retrain schedule, the prompts sensor, the rebuild condition, one writer per asset.

The sensor end to end (new prompts in a team's file, the run it requests, the traces generated for the new
prompts only) is in tests/test_e2e_files.py, over that module's team graph.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (DagsterInstance, DagsterRunStatus, RunRequest, SkipReason, build_schedule_context,
                     build_sensor_context)

from assets.retraining import REBUILT_ON_CHANGE, prompts_sensor, retrain_schedule
from resources import TessyConfig
from tessy_dagster.settings import RetrainSettings
from tessy_dagster.storage import build_artifact

REPO = Path(__file__).parent.parent


def test_the_schedule_refreshes_the_inputs_on_the_cron_from_settings():
    schedule = retrain_schedule(RetrainSettings(cron="15 4 * * 1", timezone="Europe/Paris"))
    assert schedule.cron_schedule == "15 4 * * 1" and schedule.execution_timezone == "Europe/Paris"
    [request] = schedule.evaluate_tick(build_schedule_context(DagsterInstance.ephemeral())).run_requests
    assert schedule.job_name == "refresh_inputs" and request.tags["tessy/trigger"] == "schedule"
    with pytest.raises(ValueError, match="retrain.cron"):
        retrain_schedule(RetrainSettings(cron="every sunday"))


def test_the_rebuild_condition_is_on_what_retraining_rebuilds_only():
    from dagster import AssetKey

    from tessy_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        rebuilt = key.to_user_string() in REBUILT_ON_CHANGE
        assert (condition is not None and condition.get_label() == "rebuild when an input changed") == rebuilt, key
    assert graph.get(AssetKey("boundary_model")).automation_condition is None
    assert [s.name for s in defs.schedules] == ["retrain_schedule"]
    assert [s.name for s in defs.sensors] == ["prompts_source_sensor"]


def _tick(home, overrides="", cursor=None):
    sensor = prompts_sensor(RetrainSettings())
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor, resources={
        "tessy": TessyConfig(profile="micro", home=str(home), overrides_file=str(overrides))})
    return sensor(context), context.cursor


def test_the_prompts_sensor_requests_a_refresh_only_when_the_source_changed(micro_graph, tmp_path):
    result, cursor = _tick(micro_graph.home)
    assert isinstance(result, SkipReason) and "built from this source" in result.skip_message and cursor
    grown = tmp_path / "grown.json"
    grown.write_text(json.dumps({"toyworld": {"n_prompts": 9}}))
    result, new_cursor = _tick(micro_graph.home, grown, cursor)
    assert isinstance(result, RunRequest) and new_cursor != cursor
    assert result.run_key == f"prompts-source-{new_cursor[:16]}"  # the same source version is requested once
    # nothing built yet: the first tick requests the inputs
    result, _ = _tick(tmp_path / "empty_home")
    assert isinstance(result, RunRequest)


def test_leftover_temporary_folders_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "cooperative_traces" / "tessy"
    target.parent.mkdir()
    leftovers = [target.parent / ".tessy.tmp-0badc0de", target.parent / ".tessy.old-0badc0de"]
    resume = target.parent / ".tessy.work-0123456789abcdef"
    other_arm = target.parent / ".teacher_only.tmp-0badc0de"
    for folder in leftovers + [resume, other_arm]:
        (folder / "sub").mkdir(parents=True)
    build_artifact(target, inputs={}, settings={}, code_version="1",
                   build=lambda tmp: (tmp / "traces.parquet").write_text("x") and {})
    assert not any(p.exists() for p in leftovers)
    assert resume.exists() and other_arm.exists()  # resume progress and other partitions are left alone
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([".tessy.work-0123456789abcdef",
                                                                      ".teacher_only.tmp-0badc0de", "tessy"])


def _materialize_cli(env, log):
    return subprocess.Popen([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "tessy_dagster.definitions",
                             "--select", "cooperative_traces", "--partition", "tessy"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_two_materializations_of_the_same_partition_at_once_run_one_after_the_other(micro_graph, tmp_path):
    """As a new user would, from two terminals: two `dagster asset materialize` of cooperative_traces [tessy]
    on one DAGSTER_HOME with the project's instance file. The asset's pool (limit 1) holds the second step
    until the first is done; the second then finds the artifact and reuses it. Never two writers at once."""
    home = tmp_path / "home"  # a copy: its upstream folders differ, so the traces are generated anew
    shutil.copytree(micro_graph.home, home, ignore=shutil.ignore_patterns(
        "cooperative_traces", "sft_corpus", "student_checkpoint", "benchmark_scores"))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
    # The instance's SQLite tables exist before the two terminals start, as in any DAGSTER_HOME used before:
    # two processes creating them at the same moment race in Dagster's schema migration (alembic "more than
    # one head"), and the loser's run dies holding its pool slot.
    DagsterInstance.from_config(str(dagster_home)).get_runs()
    env = {**os.environ, "TESSY_PROFILE": "micro", "TESSY_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    logs = [tmp_path / "terminal_1.log", tmp_path / "terminal_2.log"]
    with logs[0].open("w") as first_log, logs[1].open("w") as second_log:
        first, second = _materialize_cli(env, first_log), _materialize_cli(env, second_log)
        codes = [first.wait(timeout=600), second.wait(timeout=600)]
    assert codes == [0, 0], [p.read_text()[-3000:] for p in logs]

    instance = DagsterInstance.from_config(str(dagster_home))
    runs = instance.get_runs()
    assert len(runs) == 2 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    steps, reused, blocked = [], [], 0
    for run in runs:
        records = instance.all_logs(run.run_id)
        blocked += sum("blocked by limit for pool cooperative_traces" in (r.message or "") for r in records)
        started = [r.timestamp for r in records if r.dagster_event and r.dagster_event.event_type_value == "STEP_START"]
        ended = [r.timestamp for r in records if r.dagster_event and r.dagster_event.event_type_value == "STEP_SUCCESS"]
        steps.append((started[0], ended[0]))
        [materialization] = [r.asset_materialization for r in records if r.asset_materialization]
        # a step that ran reports its own metadata; a reused artifact says `reused`
        reused.append("reused" in materialization.metadata and materialization.metadata["reused"].value)
    assert blocked >= 1  # the second step waited for the pool's slot
    (a_start, a_end), (b_start, b_end) = sorted(steps)
    assert a_end <= b_start  # one writer at a time
    assert sorted(reused) == [False, True]  # generated once, reused once
    assert not list((home / "cooperative_traces").glob(".tessy.*"))  # no temporary or resume folder left
