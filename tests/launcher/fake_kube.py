"""A fake Kubernetes API server for the launcher's tests: only the endpoints the launcher calls, over real HTTP.

No API server can run on this machine, so this plays one on 127.0.0.1: it stores Jobs, makes pods for them
like the Job controller (retries up to backoffLimit, podFailurePolicy's Ignore on disruptions,
activeDeadlineSeconds), "schedules" each pod against one node's allocatable GPUs and labels, and runs the
container's command as a local process with the container's env (values, Secret keys, field refs). A pod's
log is that process's output with a timestamp per line, served with `follow`. It also plays failures:
OOMKilled (the process tree's resident memory over the container's memory limit), eviction of a pod when its
log shows a given line, an unpullable image, a missing Secret, an unschedulable pod.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

MEMORY_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity)
    return int(match[1]) * MEMORY_UNITS.get(match[2], 1)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (what a container's memory cgroup counts)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        children.setdefault(int(fields["PPid"].strip()), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    return total


class FakeCluster:
    def __init__(self, *, gpus: int = 8, node_labels: dict | None = None, path: str | None = None):
        self.gpus, self.node_labels = gpus, dict(node_labels or {})
        self.path = path or os.path.dirname(sys.executable) + ":/usr/bin:/bin"  # the "image's" PATH
        self.namespaces = {"tessy"}
        self.secrets: dict[tuple[str, str], str] = {}
        self.unpullable_images: set[str] = set()
        self.evict_on: dict[str, str] = {}  # step label -> a log line that gets the first pod evicted
        self.hold_steps: set[str] = set()  # pods of these steps run without starting their process
        # Kueue: a Job with a queue label is created suspended (as Kueue's webhook does) and admitted this late
        self.kueue_admission_s: float | None = None
        self.jobs: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.created_jobs: list[dict] = []  # every Job body as received
        self.deleted_jobs: list[str] = []
        self.logs: dict[str, list[tuple[str, str]]] = {}
        self.lock = threading.Condition()
        self._procs: dict[str, subprocess.Popen] = {}
        self._evicted_once: set[str] = set()
        self._last_ts = dt.datetime.now(dt.timezone.utc)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> "FakeCluster":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._controller, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        with self.lock:
            for proc in self._procs.values():
                _kill(proc)

    def kubeconfig(self, path: Path, namespace: str = "tessy") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }))
        return path

    def jobs_of(self, step: str) -> list[dict]:
        return [j for j in self.created_jobs if j["metadata"]["labels"].get("tessy.dev/step") == step]

    def pod_log(self, pod: str) -> list[str]:
        with self.lock:
            return [line for _, line in self.logs.get(pod, [])]

    # --- the Job controller and kubelet -------------------------------------------------------------------

    def _controller(self) -> None:
        while True:
            with self.lock:
                for job in list(self.jobs.values()):
                    self._reconcile(job)
                self.lock.notify_all()
            time.sleep(0.1)

    def _job_pods(self, job: dict) -> list[dict]:
        name = job["metadata"]["name"]
        return [p for p in self.pods.values() if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name]

    def _reconcile(self, job: dict) -> None:
        status, spec = job["status"], job["spec"]
        if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", [])):
            return
        if spec.get("suspend"):
            if time.time() - job["_created"] < (self.kueue_admission_s or 0):
                return
            spec["suspend"] = False  # admitted: the deadline counts from here, as startTime does
            job["_started"], status["startTime"] = time.time(), _now()
        pods = self._job_pods(job)
        for pod in pods:
            self._kubelet(pod)
        pods = self._job_pods(job)
        active = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
        succeeded = [p for p in pods if p["status"]["phase"] == "Succeeded"]
        ignored = lambda p: any(c["type"] == "DisruptionTarget" for c in p["status"].get("conditions", []))  # noqa: E731
        failed = [p for p in pods if p["status"]["phase"] == "Failed" and not ignored(p)]
        status.update(active=len(active), succeeded=len(succeeded), failed=len(failed))
        deadline = spec.get("activeDeadlineSeconds")
        if deadline and time.time() - job["_started"] > deadline:
            for pod in active:
                self._end(pod, "Failed", reason="DeadlineExceeded",
                          message=f"Pod was active on the node longer than the specified deadline")
            return self._condition(job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        if len(failed) > spec.get("backoffLimit", 6):
            for pod in active:
                self._end(pod, "Failed", reason="", message="", exit_code=143)
            return self._condition(job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if len(succeeded) >= spec.get("completions", 1):
            return self._condition(job, "Complete", "", "")
        if not active:
            self._new_pod(job, len(pods))

    def _condition(self, job, kind, reason, message) -> None:
        job["status"].setdefault("conditions", []).append(
            {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": _now()})

    def _new_pod(self, job: dict, attempt: int) -> None:
        template = copy.deepcopy(job["spec"]["template"])
        name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        labels = {**template["metadata"].get("labels", {}), "batch.kubernetes.io/job-name": job["metadata"]["name"],
                  "job-name": job["metadata"]["name"]}
        self.pods[name] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": job["metadata"]["namespace"], "labels": labels,
                         "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
                         "creationTimestamp": _now(), "uid": str(uuid.uuid4())},
            "spec": template["spec"],
            "status": {"phase": "Pending", "conditions": []},
            "_attempt": attempt,
        }

    def _kubelet(self, pod: dict) -> None:
        name, status = pod["metadata"]["name"], pod["status"]
        container = pod["spec"]["containers"][0]
        if status["phase"] == "Pending":
            why = self._unschedulable(pod)
            if why:
                status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                         "message": why}]
                return
            status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
            env, missing = self._env(pod, container)
            waiting = None
            if container["image"] in self.unpullable_images:
                waiting = {"reason": "ImagePullBackOff",
                           "message": f'Back-off pulling image "{container["image"]}"'}
            elif missing:
                waiting = {"reason": "CreateContainerConfigError", "message": missing}
            if waiting:
                status["containerStatuses"] = [self._container_status(container, {"waiting": waiting})]
                return
            self._start(pod, container, env)
        elif status["phase"] == "Running":
            proc = self._procs.get(name)
            if proc is None:  # held: runs until deleted
                return
            limit = container["resources"].get("limits", {}).get("memory")
            if proc.poll() is None and limit and _tree_rss(proc.pid) > _bytes(limit):
                _kill(proc)
                proc.wait()
                self._end(pod, "Failed", reason="OOMKilled", exit_code=137, pod_level=False)
            elif proc.poll() is not None:
                self._reader_done(name)
                code = proc.returncode
                self._end(pod, "Succeeded" if code == 0 else "Failed", reason="Completed" if code == 0 else "Error",
                          exit_code=code, pod_level=False)

    def _unschedulable(self, pod: dict) -> str:
        container = pod["spec"]["containers"][0]
        gpus = int(container["resources"].get("limits", {}).get("nvidia.com/gpu", "0"))
        selector = pod["spec"].get("nodeSelector", {})
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        if gpus > self.gpus:
            return "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        return ""

    def _env(self, pod: dict, container: dict) -> tuple[dict, str]:
        env = {"PATH": self.path, "HOME": os.environ.get("HOME", "/root")}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                if (ref["name"], ref["key"]) not in self.secrets:
                    return env, f'secret "{ref["name"]}" not found or has no key "{ref["key"]}"'
                env[item["name"]] = self.secrets[(ref["name"], ref["key"])]
            elif "fieldRef" in item.get("valueFrom", {}):
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path)[1]
                env[item["name"]] = pod["metadata"]["annotations"][key]
        return env, ""

    def _start(self, pod: dict, container: dict, env: dict) -> None:
        name = pod["metadata"]["name"]
        pod["status"].update(phase="Running", startTime=_now())
        pod["status"]["containerStatuses"] = [self._container_status(container, {"running": {"startedAt": _now()}})]
        self.logs[name] = []
        step = pod["metadata"]["labels"].get("tessy.dev/step")
        if step in self.hold_steps:
            return
        proc = subprocess.Popen(container["command"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        self._procs[name] = proc
        threading.Thread(target=self._read_output, args=(pod, proc), daemon=True).start()

    def _read_output(self, pod: dict, proc: subprocess.Popen) -> None:
        name = pod["metadata"]["name"]
        step = pod["metadata"]["labels"].get("tessy.dev/step")
        for line in proc.stdout:
            with self.lock:
                stamp = max(dt.datetime.now(dt.timezone.utc), self._last_ts + dt.timedelta(microseconds=1))
                self._last_ts = stamp  # strictly increasing: Dagster's reader joins lines sharing a timestamp
                self.logs[name].append((stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), line.rstrip("\n")))
                trigger = self.evict_on.get(step)
                if trigger and trigger in line and step not in self._evicted_once:
                    self._evicted_once.add(step)
                    _kill(proc)
                    self._end(pod, "Failed", reason="Evicted", exit_code=137,
                              message="The node was low on resource: memory.", disruption=True)
                self.lock.notify_all()
        with self.lock:
            pod["_reader_done"] = True
            self.lock.notify_all()

    def _reader_done(self, name: str) -> None:
        # the process has exited: wait (briefly, outside nothing else) for its last lines to be read
        deadline = time.time() + 5
        while not self.pods[name].get("_reader_done") and time.time() < deadline:
            self.lock.wait(0.05)

    def _end(self, pod: dict, phase: str, *, reason: str, exit_code: int = 1, message: str = "",
             pod_level: bool = True, disruption: bool = False) -> None:
        if pod["status"]["phase"] in ("Succeeded", "Failed"):
            return
        proc = self._procs.pop(pod["metadata"]["name"], None)
        if proc is not None and proc.poll() is None:
            _kill(proc)
        container = pod["spec"]["containers"][0]
        terminated = {"exitCode": exit_code, "reason": reason or "Error", "finishedAt": _now()}
        pod["status"]["phase"] = phase
        pod["status"]["containerStatuses"] = [self._container_status(container, {"terminated": terminated})]
        if pod_level and reason:
            pod["status"].update(reason=reason, message=message)
        if disruption:
            pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                                "reason": "TerminationByKubelet", "message": message})
        pod["_finished"] = time.time()

    @staticmethod
    def _container_status(container: dict, state: dict) -> dict:
        return {"name": container["name"], "image": container["image"], "imageID": "", "ready": "running" in state,
                "restartCount": 0, "state": state}

    def delete_job(self, name: str) -> bool:
        with self.lock:
            job = self.jobs.pop(name, None)
            if job is None:
                return False
            self.deleted_jobs.append(name)
            for pod in self._job_pods(job):
                proc = self._procs.pop(pod["metadata"]["name"], None)
                if proc is not None:
                    _kill(proc)
                del self.pods[pod["metadata"]["name"]]
            self.lock.notify_all()
            return True


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _handler(cluster: FakeCluster):
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: a followed log is sent in chunks, as the API server does (a client reads each as it comes)
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, kind: str, name: str) -> None:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                             "code": 404, "message": f'{kind} "{name}" not found'})

        def _body(self) -> dict:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

        def do_POST(self):
            path = urlparse(self.path).path
            if m := re.fullmatch(r"/api(?:s/batch)?/v1/namespaces/([^/]+)/(?:jobs|services)", path):
                if m[1] not in cluster.namespaces:
                    return self._not_found("namespaces", m[1])
            if m := re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs", path):
                job = self._body()
                with cluster.lock:
                    cluster.created_jobs.append(copy.deepcopy(job))
                    job["metadata"].update(namespace=m[1], uid=str(uuid.uuid4()), creationTimestamp=_now())
                    job["status"] = {"startTime": _now()}
                    job["_started"] = job["_created"] = time.time()
                    queued = "kueue.x-k8s.io/queue-name" in job["metadata"].get("labels", {})
                    if queued and cluster.kueue_admission_s is not None:
                        job["spec"]["suspend"] = True
                        del job["status"]["startTime"]
                    cluster.jobs[job["metadata"]["name"]] = job
                    return self._send(201, _public(job))
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/services", path):
                service = self._body()
                with cluster.lock:
                    cluster.services[service["metadata"]["name"]] = service
                return self._send(201, service)
            self._send(404, {"kind": "Status", "code": 404, "message": f"fake: no route POST {path}"})

        def do_DELETE(self):
            path = urlparse(self.path).path
            if m := re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)", path):
                if cluster.delete_job(m[2]):
                    return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                return self._not_found("jobs.batch", m[2])
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/]+)", path):
                with cluster.lock:
                    found = cluster.services.pop(m[2], None)
                return self._send(200, found) if found else self._not_found("services", m[2])
            self._send(404, {"kind": "Status", "code": 404, "message": f"fake: no route DELETE {path}"})

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if m := re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)", url.path):
                with cluster.lock:
                    job = cluster.jobs.get(m[2])
                    return self._send(200, _public(job)) if job else self._not_found("jobs.batch", m[2])
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", url.path):
                key, _, value = query.get("labelSelector", "").partition("=")
                with cluster.lock:
                    items = [_public(p) for p in cluster.pods.values()
                             if not key or p["metadata"]["labels"].get(key) == value]
                return self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", url.path):
                return self._log(m[2], follow=query.get("follow", "").lower() == "true",
                                 timestamps=query.get("timestamps", "").lower() == "true")
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", url.path):
                with cluster.lock:
                    pod = cluster.pods.get(m[2])
                    return self._send(200, _public(pod)) if pod else self._not_found("pods", m[2])
            self._send(404, {"kind": "Status", "code": 404, "message": f"fake: no route GET {url.path}"})

        def _log(self, name: str, follow: bool, timestamps: bool) -> None:
            with cluster.lock:
                pod = cluster.pods.get(name)
                if pod is None:
                    return self._not_found("pods", name)
                if pod["status"]["phase"] == "Pending":
                    return self._send(400, {"kind": "Status", "code": 400, "reason": "BadRequest",
                                            "message": f'container "step" in pod "{name}" is waiting to start'})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            while True:
                with cluster.lock:
                    lines = cluster.logs.get(name, [])[sent:]
                    pod = cluster.pods.get(name)
                    ended = pod is None or (pod["status"]["phase"] in ("Succeeded", "Failed")
                                            and (pod.get("_reader_done") or name not in cluster._procs))
                    if not lines and follow and not ended:
                        cluster.lock.wait(0.5)
                        continue
                sent += len(lines)
                try:
                    if lines:
                        text = "".join(f"{ts} {line}\n" if timestamps else f"{line}\n" for ts, line in lines).encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(text), text))
                        self.wfile.flush()
                    if not follow or (ended and not lines):
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        return
                except (BrokenPipeError, ConnectionResetError):
                    return

    return Handler
