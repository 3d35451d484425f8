"""The `kubernetes` launcher end to end: real Dagster materializations, the real `kubernetes` client over HTTP,
and a fake API server (fake_kube.py) that runs each Job's container command as a local process."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from fake_kube import FakeCluster
from resources import StepLauncher, TessyConfig
from tessy_dagster.definitions import all_assets
from tessy_dagster.storage import data_version, read_manifest

UPSTREAM = ["prompts", "benchmark", "teacher_model", "student_model", "boundary_dataset", "boundary_model"]
HEAVY = {"teacher_model": "toy-model", "student_model": "toy-model", "boundary_dataset": "boundary-dataset",
         "boundary_model": "boundary-model"}


def _overrides(tmp: Path, kubeconfig: Path, name: str, **launcher) -> Path:
    """A settings file selecting the kubernetes launcher against the fake, plus `launcher` overrides."""
    kubernetes = {"kubeconfig": str(kubeconfig), "poll_s": 0.2, "pending_timeout_s": 4,
                  "defaults": {"image": "tessy-dagster-gpu:test", "cpu": "2", "memory": "16Gi", "shm": "1Gi",
                               "node_selector": {"tessy.dev/pool": "gpu"}, "queue": "tessy-gpu",
                               "backoff_limit": 1, "active_deadline_s": 3600}}
    for key, value in launcher.items():
        kubernetes[key] = {**kubernetes.get(key, {}), **value} if isinstance(value, dict) else value
    # four shards of two prompts: an evicted pod leaves finished shards behind for its retry
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"cooperate": {"shard_size": 2},
                                "launcher": {"mode": "kubernetes", "kubernetes": kubernetes}}))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    fake = FakeCluster(gpus=8, node_labels={"tessy.dev/pool": "gpu"}).start()
    fake.kueue_admission_s = 1.0
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, cluster):
    """The micro graph's inputs and boundary stage, every heavy step in a Job on the fake cluster."""
    tmp = tmp_path_factory.mktemp("k8s")
    home = tmp / "home"
    kubeconfig = cluster.kubeconfig(tmp / "kubeconfig")
    overrides = _overrides(tmp, kubeconfig, "k8s")
    instance = DagsterInstance.ephemeral()
    result = materialize(all_assets, selection=UPSTREAM, instance=instance, resources=_resources(home, overrides))
    return {"tmp": tmp, "home": home, "kubeconfig": kubeconfig, "overrides": overrides, "instance": instance,
            "result": result}


def _resources(home, overrides):
    return {"tessy": TessyConfig(profile="micro", home=str(home), overrides_file=str(overrides)),
            "launcher": StepLauncher()}


def _messages(instance, run_id) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id)]


def test_each_heavy_step_runs_in_a_job_and_reports_through_pipes(world, cluster):
    result, home = world["result"], world["home"]
    assert result.success
    for asset, step in HEAVY.items():
        assert cluster.jobs_of(step), f"no Job was created for {asset}"
        [event] = result.asset_materializations_for_node(asset)
        manifest = read_manifest(home / asset / "all")
        # the data version is the one the step reported through Pipes from inside the "pod"
        assert event.tags["dagster/data_version"] == data_version(manifest)
        assert event.metadata["digest"].value == data_version(manifest)
    [job] = cluster.jobs_of("boundary-model")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "tessy_dagster.steps.boundary_model"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "DAGSTER_PIPES_CONTEXT" in env and "DAGSTER_PIPES_MESSAGES" in env
    assert env["TESSY_HOME"] == str(home.resolve())
    # each Job waited in its Kueue queue (created suspended) until admitted, and the user was told
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tessy-gpu"
    assert any("waits for admission in Kueue queue tessy-gpu" in m
               for m in _messages(world["instance"], result.run_id))


def test_step_logs_arrive_while_the_pod_runs(world, cluster):
    """A step's progress lines reach Dagster's event log before its pod has finished."""
    instance, run_id = world["instance"], world["result"].run_id
    [job] = cluster.jobs_of("boundary-model")
    [pod] = [p for p in cluster.pods.values() if p["metadata"]["labels"]["batch.kubernetes.io/job-name"]
             == job["metadata"]["name"]]
    progress = [e for e in instance.all_logs(run_id) if e.step_key == "boundary_model"
                and e.user_message.startswith("training ")]
    assert progress, _messages(instance, run_id)[-20:]
    assert progress[0].timestamp < pod["_finished"] - 0.05


def test_a_preempted_pod_is_retried_and_cooperative_traces_resume_from_the_volume(world, cluster):
    cluster.evict_on["cooperative-traces"] = "shard 2/4 written"
    result = materialize(all_assets, selection=["cooperative_traces"], partition_key="tessy",
                         instance=world["instance"], resources=_resources(world["home"], world["overrides"]))
    assert result.success
    messages = _messages(world["instance"], result.run_id)
    [job] = cluster.jobs_of("cooperative-traces")
    pods = sorted((p for p in cluster.pods.values()
                   if p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == job["metadata"]["name"]),
                  key=lambda p: p["_attempt"])
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Succeeded"]
    assert any("failed: Evicted" in m for m in messages), messages
    # the retry found the evicted pod's finished shards on the artifact volume (the step reports its progress
    # as Pipes log messages: the line is inside one)
    assert any("resuming: 2 of 4 shards" in line for line in cluster.pod_log(pods[1]["metadata"]["name"])), \
        cluster.pod_log(pods[1]["metadata"]["name"])
    traces = pq.read_table(world["home"] / "cooperative_traces" / "tessy" / "traces.parquet")
    assert sorted(traces.column("prompt_id").to_pylist()) == sorted(
        pq.read_table(world["home"] / "prompts" / "all" / "prompts.parquet").column("problem_id").to_pylist())


def _failure(world, cluster, name: str, **launcher) -> str:
    """Materialize student_responses with launcher overrides; the step failure's full text."""
    overrides = _overrides(world["tmp"], world["kubeconfig"], name, **launcher)
    result = materialize(all_assets, selection=["student_responses"], instance=world["instance"],
                         resources=_resources(world["home"], overrides), raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.error.to_string()


def _last_job(cluster, step="student-responses") -> str:
    return cluster.jobs_of(step)[-1]["metadata"]["name"]


def test_out_of_memory_fails_with_the_reason_and_the_setting_to_raise(world, cluster):
    error = _failure(world, cluster, "oom", steps={"student_responses": {"memory": "80Mi", "backoff_limit": 0}})
    assert "BackoffLimitExceeded" in error
    assert "OOMKilled (exit code 137)" in error
    assert "raise launcher.kubernetes.steps.student_responses.memory" in error
    assert _last_job(cluster) not in cluster.deleted_jobs  # failed by itself: kept for its logs until its TTL


def test_deadline_exceeded(world, cluster):
    error = _failure(world, cluster, "deadline", steps={"student_responses": {"active_deadline_s": 2}})
    assert "DeadlineExceeded: Job was active longer than specified deadline" in error


def test_unschedulable_pod_gives_up_after_the_pending_timeout_and_deletes_its_job(world, cluster):
    started = time.monotonic()
    error = _failure(world, cluster, "gpus", steps={"student_responses": {"gpus": 16}})
    assert "Insufficient nvidia.com/gpu" in error and "pending_timeout_s = 4" in error
    assert time.monotonic() - started < 60
    assert _last_job(cluster) in cluster.deleted_jobs
    error = _failure(world, cluster, "selector", steps={"student_responses": {"node_selector": {"pool": "h100"}}})
    assert "didn't match Pod's node affinity/selector" in error


def test_image_pull_and_missing_secret_are_named(world, cluster):
    cluster.unpullable_images.add("registry.example/tessy:typo")
    error = _failure(world, cluster, "image", steps={"student_responses": {"image": "registry.example/tessy:typo"}})
    assert "ImagePullBackOff" in error and "registry.example/tessy:typo" in error
    error = _failure(world, cluster, "secret", secret_env={"TEACHER_API_KEY": {"secret": "teacher-api", "key": "api-key"}})
    assert 'CreateContainerConfigError: secret "teacher-api" not found' in error
    error = _failure(world, cluster, "namespace", namespace="nowhere")
    assert "cannot create Job nowhere/" in error and "HTTP 404" in error
    assert "the namespace does not exist (launcher.kubernetes.namespace)" in error


def test_a_secret_reaches_the_step_as_env(world, cluster):
    """The Secret's value is in the pod's env (read by the fake from its store), never in the Job body."""
    cluster.secrets[("teacher-api", "api-key")] = "s3cret-value"
    overrides = _overrides(world["tmp"], world["kubeconfig"], "secret-ok",
                           secret_env={"TEACHER_API_KEY": {"secret": "teacher-api", "key": "api-key"}})
    result = materialize(all_assets, selection=["student_responses"], instance=world["instance"],
                         resources=_resources(world["home"], overrides))
    assert result.success
    [job] = [j for j in cluster.jobs_of("student-responses") if j["metadata"]["name"] == _last_job(cluster)]
    assert "s3cret-value" not in json.dumps(job)


@pytest.mark.parametrize("signal", [signal.SIGINT, signal.SIGTERM])
def test_terminating_the_dagster_run_deletes_its_job(world, cluster, signal):
    """A run started from the CLI, stopped while its step's pod runs (SIGINT: Ctrl-C; SIGTERM: what the run's
    pod gets when Dagster terminates a run on Kubernetes), deletes the Job."""
    cluster.hold_steps.add("cooperative-traces")
    overrides = _overrides(world["tmp"], world["kubeconfig"], "hold")
    env = {"TESSY_PROFILE": "micro", "TESSY_HOME": str(world["home"]), "TESSY_SETTINGS": str(overrides),
           "DAGSTER_HOME": str(world["tmp"]), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    (world["tmp"] / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    before = len(cluster.jobs_of("cooperative-traces"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                             "tessy_dagster.definitions", "--select", "cooperative_traces", "--partition",
                             "teacher_only"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(cluster.jobs_of("cooperative-traces")) == before or not [
                p for p in cluster.pods.values() if p["status"]["phase"] == "Running"
                and p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == _last_job(cluster, "cooperative-traces")]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal)
        output, _ = proc.communicate(timeout=60)
    finally:
        cluster.hold_steps.discard("cooperative-traces")
        if proc.poll() is None:
            proc.kill()
    assert _last_job(cluster, "cooperative-traces") in cluster.deleted_jobs, output[-3000:]
