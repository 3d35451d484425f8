"""What the kubernetes launcher sends: a GPU step's Job body, the multi-node SFT Job and its Service, checked
field by field and against Kubernetes' own schemas (kubernetes-validate --strict)."""

import os
import subprocess
import sys

import pytest

from resources.k8s_job import gpus_needed, headless_service, job_body, job_name
from tessy_dagster.settings import CooperateSettings, EvalSettings, KubernetesSettings, SftSettings
from tessy_dagster.train.launch import launch_command

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (the dev extra)")
K8S_VERSIONS = ("1.31.0", "1.37.0")  # the oldest and newest supported (tests/deploy/test_manifests.py)

SETTINGS = KubernetesSettings.model_validate({
    "namespace": "tessy",
    "secret_env": {"TEACHER_API_KEY": {"secret": "teacher-api", "key": "api-key"}},
    "env": {"HF_HUB_OFFLINE": "1"},
    "ttl_after_finished_s": 3600,
    "defaults": {"image": "registry.example/tessy-dagster-gpu:0.1.0", "cpu": "16", "memory": "200Gi",
                 "shm": "64Gi", "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                 "priority_class": "tessy-batch", "queue": "tessy-gpu", "backoff_limit": 4,
                 "active_deadline_s": 172800},
    "steps": {"benchmark_scores": {"gpus": 2, "queue": ""}},
})


def _cooperative_job(**kw):
    step_settings = CooperateSettings(generation={"backend": "vllm", "tensor_parallel_size": 4}).model_dump()
    return job_body(name="tessy-cooperative-traces-abcd1234-0a1b2c", step="cooperative_traces",
                    command=["python", "-m", "tessy_dagster.steps.cooperative_traces", "--params", "{}"],
                    env={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msg"}, settings=SETTINGS,
                    home="/tessy", gpus=gpus_needed(step_settings), partition="tessy", run_id="abcd1234-ef", **kw)


def _validate(doc):
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as err:
            raise AssertionError(f"{doc['kind']} at Kubernetes {version}: {err.message} "
                                 f"(at {'/'.join(map(str, err.path))})") from None


def test_a_gpu_steps_job_body():
    body = _cooperative_job()
    _validate(body)
    spec, pod = body["spec"], body["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tessy-gpu"
    assert body["metadata"]["labels"]["tessy.dev/partition"] == "tessy"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (4, 172800, 3600)
    assert spec["podFailurePolicy"]["rules"][0] == {"action": "Ignore",
                                                    "onPodConditions": [{"type": "DisruptionTarget",
                                                                         "status": "True"}]}
    assert pod["restartPolicy"] == "Never" and "completionMode" not in spec
    # vLLM's tensor parallelism (4) is the GPU count
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["requests"] == {"cpu": "16", "memory": "200Gi", "nvidia.com/gpu": "4"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["priorityClassName"] == "tessy-batch"
    assert pod["serviceAccountName"] == "tessy-step" and pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert volumes[mounts["/tessy"]["name"]]["persistentVolumeClaim"]["claimName"] == "tessy-artifacts"
    assert volumes[mounts["/models"]["name"]]["persistentVolumeClaim"] == {"claimName": "tessy-models",
                                                                          "readOnly": True}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    env = {e["name"]: e for e in container["env"]}
    assert env["TESSY_HOME"]["value"] == "/tessy"
    assert env["DAGSTER_PIPES_CONTEXT"]["value"] == "ctx"
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    # the API key comes from the Secret; no value is in the body
    assert env["TEACHER_API_KEY"] == {"name": "TEACHER_API_KEY",
                                      "valueFrom": {"secretKeyRef": {"name": "teacher-api", "key": "api-key"}}}


def test_per_step_settings_override_the_defaults():
    body = job_body(name="tessy-benchmark-scores-x", step="benchmark_scores", command=["python"], env={},
                    settings=SETTINGS, home="/tessy", gpus=2)
    assert "kueue.x-k8s.io/queue-name" not in body["metadata"]["labels"]  # queue "" means none
    assert body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert body["spec"]["template"]["spec"]["nodeSelector"]  # still the default's


def test_gpus_follow_the_steps_settings():
    assert gpus_needed(CooperateSettings(generation={"backend": "vllm", "tensor_parallel_size": 8}).model_dump()) == 8
    assert gpus_needed(CooperateSettings(generation={"backend": "hf"}).model_dump()) == 1
    assert gpus_needed(CooperateSettings(generation={"backend": "openai"}).model_dump()) == 0  # served elsewhere
    assert gpus_needed(EvalSettings(generation={"backend": "vllm", "tensor_parallel_size": 2}).model_dump()) == 2
    assert gpus_needed(SftSettings(num_processes=8, per_device_batch_size=4).model_dump()) == 8
    assert len(job_name("cooperative_traces", "0123456789abcdef")) <= 63


def test_the_launcher_refuses_fewer_gpus_than_tensor_parallelism(tmp_path):
    from dagster import build_asset_context

    from resources import StepLauncher
    from tessy_dagster.settings import LauncherSettings

    launcher = LauncherSettings(mode="kubernetes", kubernetes={"steps": {"cooperative_traces": {"gpus": 2}}})
    params = {"settings": CooperateSettings(generation={"backend": "vllm", "tensor_parallel_size": 4}).model_dump()}
    with pytest.raises(ValueError, match="steps.cooperative_traces.gpus is 2, and the step's settings need 4"):
        StepLauncher().run(build_asset_context(), "cooperative_traces", params, launcher, home=str(tmp_path))


def test_multi_node_sft_is_an_indexed_job_meeting_at_pod_0():
    name = "tessy-student-checkpoint-abcd1234-0a1b2c"
    body = job_body(name=name, step="student_checkpoint", command=["python"], env={}, settings=SETTINGS,
                    home="/tessy", gpus=8, nodes=4)
    _validate(body)
    service = headless_service(name, "tessy", 29500)
    _validate(service)
    spec, pod = body["spec"], body["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert pod["subdomain"] == name == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["TESSY_MASTER_ADDR"]["value"] == f"{name}-0.{name}.tessy.svc"
    assert env["TESSY_NUM_NODES"]["value"] == "4"
    assert "job-completion-index" in env["TESSY_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_each_node_runs_torchrun_against_pod_0(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="num_nodes > 1 runs under torchrun"):
        SftSettings(num_nodes=4, num_processes=8, per_device_batch_size=4, batch_size=128, launcher="accelerate")
    settings = SftSettings(num_nodes=4, num_processes=8, per_device_batch_size=4, batch_size=128, launcher="torchrun")
    with pytest.raises(ValueError, match="Indexed Job under the kubernetes launcher"):
        launch_command(settings, tmp_path / "p.json")
    monkeypatch.setenv("TESSY_NODE_RANK", "2")
    monkeypatch.setenv("TESSY_NUM_NODES", "4")
    monkeypatch.setenv("TESSY_MASTER_ADDR", "job-0.job.tessy.svc")
    monkeypatch.setenv("TESSY_MASTER_PORT", "29500")
    command = launch_command(settings, tmp_path / "p.json")
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=4", "--node_rank=2", "--nproc_per_node=8", "--master_addr=job-0.job.tessy.svc",
            "--master_port=29500"} <= set(command)
