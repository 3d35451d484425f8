"""The cluster's Dagster instance, for real: kubernetes/dagster/dagster.yaml against a PostgreSQL server.

A PostgreSQL 15 server is started on this machine (a fresh data folder, a free loopback port, password
auth over TCP), the instance file used in the cluster is copied into DAGSTER_HOME unchanged with the
DAGSTER_PG_* variables pointing at that server, and the Dagster CLI materializes the inputs (the toy
teacher and student, trained by a heavy step that reports through Dagster Pipes, then prompts and benchmark)
on micro settings. Runs, events and data versions are then read back through the instance, and the rows
are counted in PostgreSQL directly.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from tessy_dagster.storage import artifact_dir, data_version, read_manifest

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO / "kubernetes" / "dagster" / "dagster.yaml"
# The toy teacher and student come from the heavy `toy_model` step (a subprocess reporting through Pipes);
# prompts and benchmark are built in-process. prompts needs both models' tokenizers, so all four run.
HEAVY = ["teacher_model", "student_model"]
ASSETS = HEAVY + ["prompts", "benchmark"]
PG_USER, PG_PASSWORD, PG_DB = "dagster", "tessy-test-password", "dagster"


def _initdb() -> Path:
    found = ["/usr/lib/postgresql/15/bin/initdb", *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")),
             shutil.which("initdb")]
    for path in found:
        if path and os.access(path, os.X_OK):
            return Path(path)
    pytest.fail("PostgreSQL's initdb was not found (looked in /usr/lib/postgresql/*/bin and on PATH): install "
                "the server, e.g. `apt-get install postgresql-15` (`make test` does this when it is missing)",
                pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server: yields its connection settings; stopped and deleted afterwards."""
    bin_dir = _initdb().parent
    root = Path(tempfile.mkdtemp(prefix="tessy-pg-"))
    # PostgreSQL refuses to run as root: under root, the server's files and processes belong to `postgres`.
    run_as = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and there is no `postgres` user to run the PostgreSQL server as",
                        pytrace=False)
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    root.chmod(0o700)
    pwfile = root / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def pg(*args, check=True):
        return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=root, capture_output=True, text=True,
                              timeout=120, check=check, **run_as)

    started = False
    try:
        pg("initdb", "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
           "--auth-local=trust", "-E", "UTF8", "--no-locale")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off"
        start = pg("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start", check=False)
        if start.returncode != 0:
            server_log = log.read_text() if log.exists() else "(no log)"
            pytest.fail(f"PostgreSQL did not start:\n{start.stdout}{start.stderr}\n{server_log}", pytrace=False)
        started = True
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD, dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        conn.cursor().execute(f"CREATE DATABASE {PG_DB}")
        conn.close()
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USER": PG_USER,
               "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_DB": PG_DB}
    finally:
        if started:
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def materialized(postgres, tmp_path_factory):
    """The CLI materializes ASSETS against the PostgreSQL-backed instance; yields (instance, TESSY_HOME)."""
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    tessy_home = tmp_path_factory.mktemp("tessy_home")
    shutil.copy(INSTANCE_YAML, dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "TESSY_"))}
    env.update(postgres, DAGSTER_HOME=str(dagster_home), TESSY_PROFILE="micro", TESSY_HOME=str(tessy_home))
    dagster_cli = Path(sys.executable).with_name("dagster")
    command = [str(dagster_cli), "asset", "materialize", "-m", "tessy_dagster.definitions",
               "--select", ",".join(ASSETS)]
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"`{' '.join(command)}` failed ({done.returncode}):\n{output[-6000:]}"
    print(f"dagster asset materialize {','.join(ASSETS)}: {time.monotonic() - began:.0f} s")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in postgres.items():  # the instance file reads the connection from the environment
            mp.setenv(key, value)
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            yield instance, tessy_home


def _query(postgres: dict, sql: str, *args):
    conn = psycopg2.connect(host=postgres["DAGSTER_PG_HOST"], port=int(postgres["DAGSTER_PG_PORT"]),
                            user=postgres["DAGSTER_PG_USER"], password=postgres["DAGSTER_PG_PASSWORD"],
                            dbname=postgres["DAGSTER_PG_DB"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_instance_stores_runs_events_and_schedules_in_postgres(materialized):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance, _ = materialized
    for name, storage, cls in (("run", instance.run_storage, PostgresRunStorage),
                               ("event log", instance.event_log_storage, PostgresEventLogStorage),
                               ("schedule", instance.schedule_storage, PostgresScheduleStorage)):
        assert isinstance(storage, cls), f"{name} storage is {type(storage).__name__}, expected {cls.__name__}"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator", type(instance.run_coordinator)


def test_the_run_succeeded_and_is_read_back(materialized):
    instance, _ = materialized
    runs = instance.get_runs()
    assert len(runs) == 1, f"expected the CLI's one run, found {[(r.run_id, r.status) for r in runs]}"
    [run] = runs
    assert run.status == DagsterRunStatus.SUCCESS, f"run {run.run_id} ended {run.status}"
    assert run.asset_selection == {AssetKey(a) for a in ASSETS}, run.asset_selection


def test_materializations_carry_the_manifests_data_versions(materialized):
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    instance, tessy_home = materialized
    [run] = instance.get_runs()
    for asset in ASSETS:
        key = AssetKey(asset)
        records = instance.fetch_materializations(key, limit=10).records
        assert len(records) == 1, f"{asset}: expected one materialization in the event log, found {len(records)}"
        [record] = records
        assert record.run_id == run.run_id, f"{asset}: materialized by {record.run_id}, not the CLI's run"
        expected = data_version(read_manifest(artifact_dir(tessy_home, asset)))
        tagged = record.asset_materialization.tags.get("dagster/data_version")
        assert tagged == expected, f"{asset}: data version tag {tagged!r} != manifest digest {expected!r}"
        latest = instance.get_latest_data_version_record(key)
        assert latest is not None, f"{asset}: no data version record"
        read_back = extract_data_version_from_entry(latest.event_log_entry)
        assert read_back is not None and read_back.value == expected, (
            f"{asset}: latest data version {read_back!r} != manifest digest {expected!r}")


def test_the_heavy_steps_reported_through_pipes(materialized):
    instance, _ = materialized
    [run] = instance.get_runs()
    logs = [entry for entry in instance.all_logs(run.run_id) if entry.dagster_event is None]
    for step in HEAVY:
        opened = [e for e in logs if e.step_key == step and "[pipes] external process successfully opened" in
                  e.user_message]
        assert opened, f"{step}: no Pipes session in the run's event log"


def test_the_rows_live_in_postgres(materialized, postgres):
    instance, _ = materialized
    [run] = instance.get_runs()
    assert _query(postgres, "SELECT run_id, status FROM runs") == [(run.run_id, "SUCCESS")]
    counted = dict(_query(postgres, "SELECT asset_key, count(*) FROM event_logs WHERE run_id = %s AND "
                                    "dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key", run.run_id))
    assert counted == {AssetKey(a).to_string(): 1 for a in ASSETS}, counted
    [(events,)] = _query(postgres, "SELECT count(*) FROM event_logs WHERE run_id = %s", run.run_id)
    assert events == len(instance.all_logs(run.run_id)), "the instance and the table disagree on the event count"


def test_schedule_storage_round_trips_an_instigator_state(materialized, postgres):
    """The schedules come later; here one stopped schedule's state is written, read back and deleted."""
    from dagster._core.remote_origin import (RegisteredCodeLocationOrigin, RemoteInstigatorOrigin,
                                             RemoteRepositoryOrigin)
    from dagster._core.scheduler.instigation import (InstigatorState, InstigatorStatus, InstigatorType,
                                                     ScheduleInstigatorData)

    instance, _ = materialized
    assert instance.all_instigator_state() == []
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("tessy_dagster"),
                                                           "__repository__"), "probe_schedule")
    state = InstigatorState(origin, InstigatorType.SCHEDULE, InstigatorStatus.STOPPED,
                            ScheduleInstigatorData(cron_schedule="0 3 * * *"))
    instance.add_instigator_state(state)
    try:
        [stored] = instance.all_instigator_state()
        assert stored.origin == origin and stored.status == InstigatorStatus.STOPPED
        assert stored.instigator_data.cron_schedule == "0 3 * * *"
        assert _query(postgres, "SELECT selector_id, instigator_type FROM instigators") == [
            (state.selector_id, "SCHEDULE")]
    finally:
        instance.delete_instigator_state(state.instigator_origin_id, state.selector_id)
    assert instance.all_instigator_state() == []
