"""Run a heavy step in a Kubernetes Job and report it to Dagster through Pipes, live.

dagster-k8s' `PipesK8sClient` launches bare Pods only; a Job adds retries (backoffLimit), a deadline, TTL
clean-up, Kueue admission and Indexed completion for multi-node SFT. So this module puts the Job together
from Pipes' own parts: `open_pipes_session` with the env context injector, and dagster-k8s'
`PipesK8sPodLogsMessageReader` following each attempt's pod log while it runs, so log lines, metadata and the
data version arrive as they do under the `local` launcher.

The Job is left for its TTL when it failed by itself (its pods' logs help), and deleted when the launch gives up
(a pod that cannot be scheduled or started in time) or the Dagster run is terminated.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from dagster import MaterializeResult, PipesClientCompletedInvocation, PipesEnvContextInjector, open_pipes_session
from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

from tessy_dagster.settings import KubernetesSettings

from .k8s_job import headless_service, job_body, job_name

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


class StepJobFailed(RuntimeError):
    """The Job failed in the cluster (its pods' failures and the Job's own reason are in the message)."""


class StepLaunchAbandoned(RuntimeError):
    """The launcher gave up on a Job that could not start (the Job is deleted)."""


def run_in_job(context, *, step: str, command: list[str], settings: KubernetesSettings, home: str, gpus: int,
               nodes: int, partition: str | None) -> MaterializeResult:
    from kubernetes import client

    _load_config(settings)
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    namespace = settings.namespace
    reader = PipesK8sPodLogsMessageReader()
    with open_pipes_session(context=context, context_injector=PipesEnvContextInjector(),
                            message_reader=reader) as session:
        name = job_name(step, context.run_id)
        body = job_body(name=name, step=step, command=command, env=dict(session.get_bootstrap_env_vars()),
                        settings=settings, home=home, gpus=gpus, nodes=nodes, partition=partition,
                        run_id=context.run_id)
        job = settings.job(step)
        keep_job = False
        try:
            with _explained(f"create Job {namespace}/{name}"):
                if nodes > 1:
                    core.create_namespaced_service(namespace,
                                                   headless_service(name, namespace, settings.rendezvous_port))
                batch.create_namespaced_job(namespace, body)
            context.log.info(f"step {step}: created Job {namespace}/{name} (image {job.image}, {gpus} GPU(s) per "
                             f"pod, {nodes} pod(s), queue {job.queue or 'none'})")
            _follow(context, batch, core, reader, name, step, settings)
            keep_job = True  # finished: its TTL removes it
        except StepJobFailed:
            keep_job = True  # failed by itself: kept until its TTL, for `kubectl logs`
            raise
        finally:
            if not keep_job:  # given up on, or the Dagster run was terminated (an interrupt lands here)
                _delete_job(context, batch, name, namespace)
            if nodes > 1:
                _ignore_missing(lambda: core.delete_namespaced_service(name, namespace))
    return PipesClientCompletedInvocation(session).get_materialize_result()


def _load_config(settings: KubernetesSettings) -> None:
    import os

    from kubernetes import config

    try:
        if settings.kubeconfig:
            config.load_kube_config(config_file=settings.kubeconfig)
        elif os.getenv("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except (config.ConfigException, OSError) as err:
        raise RuntimeError(f"launcher.kubernetes: cannot load the cluster's configuration ({err}). Inside a pod the "
                           f"service account's is used; elsewhere set launcher.kubernetes.kubeconfig or "
                           f"$KUBECONFIG") from err


@contextmanager
def _explained(action: str):
    """An API refusal with what to check: the launcher's RBAC (kubernetes/base/rbac.yaml), the namespace."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as err:
        hint = {403: "the Dagster run's service account lacks a permission; see kubernetes/base/rbac.yaml",
                404: "the namespace does not exist (launcher.kubernetes.namespace)"}.get(err.status, "")
        raise RuntimeError(f"cannot {action}: HTTP {err.status} {err.reason}: {(err.body or '')[:500]}"
                           f"{'; ' + hint if hint else ''}") from err


def _follow(context, batch, core, reader, name: str, step: str, settings: KubernetesSettings) -> None:
    """Follow the Job's pod 0, attempt after attempt, until the Job completes or fails."""
    namespace = settings.namespace
    followed: set[str] = set()
    failures: dict[str, str] = {}  # pod -> why it failed
    pending: dict[str, tuple[float, str]] = {}  # pod -> (since, last reason logged)
    queued_logged = False
    while True:
        job = batch.read_namespaced_job(name, namespace)
        pods = core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items
        pods.sort(key=lambda p: (p.metadata.creation_timestamp is None, p.metadata.creation_timestamp,
                                 p.metadata.name))
        for pod in pods:
            if pod.status.phase == "Failed" and pod.metadata.name not in failures:
                failures[pod.metadata.name] = pod_failure(pod, step)
                context.log.warning(f"step {step}: pod {pod.metadata.name} failed: {failures[pod.metadata.name]}")
        lead = [p for p in pods if _index(p) == 0 and p.metadata.name not in followed]
        if lead:
            pod = lead[0]
            if pod.status.phase == "Pending":
                _check_pending(context, pod, pending, step, settings)
            else:
                context.log.info(f"step {step}: following pod {pod.metadata.name}")
                reader.consume_pod_logs(context=context, core_api=core, pod_name=pod.metadata.name,
                                        namespace=namespace)
                followed.add(pod.metadata.name)
                continue  # read its final state (and the Job's) at once
        conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"}
        if "Failed" in conditions:
            cause = conditions["Failed"]
            attempts = "".join(f"\n  pod {p}: {why}" for p, why in failures.items())
            raise StepJobFailed(f"step {step}: Job {namespace}/{name} failed: {cause.reason}: {cause.message}"
                                f"{attempts or ' (no pod failed: the Job was stopped before it finished)'}")
        if "Complete" in conditions and not [p for p in pods if _index(p) == 0 and p.metadata.name not in followed]:
            return
        if job.spec.suspend and not queued_logged:
            queue = job.metadata.labels.get("kueue.x-k8s.io/queue-name", "?")
            context.log.info(f"step {step}: Job {name} waits for admission in Kueue queue {queue}")
            queued_logged = True
        time.sleep(settings.poll_s)


def _index(pod) -> int:
    """An Indexed Job pod's completion index; 0 for every pod of a plain Job."""
    return int((pod.metadata.annotations or {}).get(INDEX_ANNOTATION, "0"))


def _check_pending(context, pod, pending: dict, step: str, settings: KubernetesSettings) -> None:
    """Log why a pod is not running yet, and give up on it after `pending_timeout_s`."""
    name = pod.metadata.name
    reason = pending_reason(pod)
    since, logged = pending.get(name, (time.monotonic(), ""))
    if reason != logged:
        context.log.info(f"step {step}: pod {name} is pending: {reason}")
    pending[name] = (since, reason)
    waited = time.monotonic() - since
    if waited > settings.pending_timeout_s:
        raise StepLaunchAbandoned(
            f"step {step}: pod {name} was still pending after {waited:.0f} s "
            f"(launcher.kubernetes.pending_timeout_s = {settings.pending_timeout_s:g}): {reason}. The Job is deleted; "
            f"check the step's resources and node selector (launcher.kubernetes.steps.{step}) against the cluster")


def pending_reason(pod) -> str:
    """Why a pod is pending: the scheduler's verdict, or why its container does not start."""
    for status in pod.status.container_statuses or []:
        waiting = status.state and status.state.waiting
        if waiting and waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
            return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return f"{condition.reason or 'not scheduled'}: {condition.message or ''}".rstrip(": ")
    return "waiting to be scheduled"


def pod_failure(pod, step: str) -> str:
    """Why a pod failed, in words a user can act on."""
    status = pod.status
    if status.reason:  # set for the pod as a whole: Evicted, DeadlineExceeded, ...
        return f"{status.reason}: {status.message or ''}".rstrip(": ")
    for condition in status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return f"{condition.reason} (preempted or evicted; the Job retries it): {condition.message or ''}"
    for container in status.container_statuses or []:
        ended = container.state and container.state.terminated
        if ended:
            if ended.reason == "OOMKilled":
                return (f"OOMKilled (exit code {ended.exit_code}): the step needed more memory than its limit; "
                        f"raise launcher.kubernetes.steps.{step}.memory")
            return f"{ended.reason or 'Error'} (exit code {ended.exit_code}){': ' + ended.message if ended.message else ''}"
    return "failed (no reason reported)"


def _delete_job(context, batch, name: str, namespace: str) -> None:
    from kubernetes import client

    context.log.info(f"deleting Job {namespace}/{name} and its pods")
    _ignore_missing(lambda: batch.delete_namespaced_job(
        name, namespace, body=client.V1DeleteOptions(propagation_policy="Background")))


def _ignore_missing(call) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as err:
        if err.status != 404:
            raise
