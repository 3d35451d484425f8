"""The `batch/v1` Job (and, for multi-node SFT, the headless Service) that runs one heavy step on Kubernetes.

Plain dicts in the API's camelCase, so a test reads exactly what goes over the wire. Nothing here talks to
a cluster; `k8s_launch` does.
"""

from __future__ import annotations

import re
import secrets

from tessy_dagster.settings import KubernetesSettings, StepJob
from tessy_dagster.train.nodes import MASTER_ADDR_ENV, MASTER_PORT_ENV, NODE_RANK_ENV, NUM_NODES_ENV

CONTAINER = "step"
STEP_LABEL = "tessy.dev/step"
PARTITION_LABEL = "tessy.dev/partition"
RUN_LABEL = "tessy.dev/dagster-run"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def job_name(step: str, run_id: str) -> str:
    """`tessy-<step>-<run>-<random>`: unique per launch, within the 63 characters a label value allows."""
    step_part = re.sub("[^a-z0-9-]", "", step.replace("_", "-"))[:30]
    return f"tessy-{step_part}-{run_id[:8]}-{secrets.token_hex(3)}"


def gpus_needed(step_settings: dict) -> int:
    """GPUs a step's own settings call for: the largest vLLM tensor parallelism among its generation
    settings, one for the in-process `hf` backend, none for a model served elsewhere (`openai`); SFT one per
    process. A step without a generation or SFT section (corpus filters, the boundary trainer) gets one."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "backend" in node and "batch_size" in node:  # a GenerationSettings
                found.append({"vllm": node.get("tensor_parallel_size", 1), "hf": 1, "openai": 0}[node["backend"]])
            for value in node.values():
                walk(value)

    if "num_processes" in step_settings and "launcher" in step_settings:  # SftSettings
        return step_settings["num_processes"]
    walk(step_settings)
    return max(found) if found else 1


def _resources(job: StepJob, gpus: int) -> dict:
    requests = {"cpu": job.cpu, "memory": job.memory}
    limits = {"memory": job.memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
        requests["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


def job_body(*, name: str, step: str, command: list[str], env: dict[str, str], settings: KubernetesSettings,
             home: str, gpus: int, nodes: int = 1, partition: str | None = None, run_id: str = "") -> dict:
    """The Job for one step. `home` is TESSY_HOME in the Dagster run's pod: the artifact PVC is mounted at
    the same path. `nodes` > 1 makes an Indexed Job whose pods find pod 0 through the headless Service of
    the same name (`headless_service`)."""
    job = settings.job(step)
    labels = {STEP_LABEL: step.replace("_", "-"), "app.kubernetes.io/part-of": "tessy-dagster",
              "app.kubernetes.io/managed-by": "tessy-launcher"}
    if partition:
        labels[PARTITION_LABEL] = re.sub("[^A-Za-z0-9_.-]", "-", partition)[:63]
    if run_id:
        labels[RUN_LABEL] = run_id[:63]
    job_labels = dict(labels)
    if job.queue:
        job_labels[QUEUE_LABEL] = job.queue  # Kueue admits the Job (it is created suspended by Kueue's webhook)

    container_env = [{"name": k, "value": v} for k, v in {**settings.env, **env, "TESSY_HOME": home}.items()]
    container_env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
                      for var, ref in settings.secret_env.items()]
    mounts = [{"name": "artifacts", "mountPath": home}, {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes = [{"name": "artifacts", "persistentVolumeClaim": {"claimName": settings.artifact_pvc}},
               {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": job.shm}}]
    if settings.model_pvc:
        mounts.append({"name": "models", "mountPath": settings.model_mount, "readOnly": True})
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": settings.model_pvc,
                                                                     "readOnly": True}})
    pod_spec = {
        "restartPolicy": "Never",  # retries are the Job's (backoffLimit), each in a fresh pod
        "serviceAccountName": job.service_account,
        "automountServiceAccountToken": False,  # a step never talks to the API server
        "containers": [{"name": CONTAINER, "image": job.image, "imagePullPolicy": "IfNotPresent",
                        "command": command, "env": container_env, "resources": _resources(job, gpus),
                        "volumeMounts": mounts}],
        "volumes": volumes,
    }
    if job.node_selector:
        pod_spec["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in job.tolerations]
    if job.priority_class:
        pod_spec["priorityClassName"] = job.priority_class
    spec = {
        "backoffLimit": job.backoff_limit,
        "activeDeadlineSeconds": job.active_deadline_s,
        "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
        # A preempted or evicted pod is retried without using up backoffLimit: the step resumes from what it
        # left on the artifact volume (cooperative_traces' finished shards).
        "podFailurePolicy": {"rules": [{"action": "Ignore",
                                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if nodes > 1:
        spec.update(completionMode="Indexed", completions=nodes, parallelism=nodes)
        pod_spec["subdomain"] = name  # pods resolve as <name>-<index>.<name>
        pod_spec["containers"][0]["env"] += [
            {"name": NODE_RANK_ENV, "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": NUM_NODES_ENV, "value": str(nodes)},
            {"name": MASTER_ADDR_ENV, "value": f"{name}-0.{name}.{settings.namespace}.svc"},
            {"name": MASTER_PORT_ENV, "value": str(settings.rendezvous_port)},
        ]
        pod_spec["containers"][0]["ports"] = [{"name": "rendezvous", "containerPort": settings.rendezvous_port}]
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": settings.namespace, "labels": job_labels}, "spec": spec}


def headless_service(name: str, namespace: str, port: int) -> dict:
    """Gives an Indexed Job's pods stable names (<job>-<index>.<job>) for torchrun's rendezvous at pod 0."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": "None", "selector": {"batch.kubernetes.io/job-name": name},
                     "publishNotReadyAddresses": True,  # ranks meet before any pod is Ready
                     "ports": [{"name": "rendezvous", "port": port}]}}
