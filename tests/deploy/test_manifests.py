"""The Kubernetes manifests, Helm values and Dockerfiles under kubernetes/, checked offline.

Each overlay is rendered with `kubectl kustomize`; every object of a built-in kind is validated against
the real Kubernetes schemas (kubernetes-validate, strict: misspelled fields fail) at each version in
K8S_VERSIONS. Custom resources (Kueue, LeaderWorkerSet), which the validator skips, are checked here on
their required fields, and their pod templates are validated as core PodTemplates. The rest are the
semantic rules the design depends on (Recreate, /dev/shm, probes, the API key from a Secret, RBAC, the
settings ConfigMap). Nothing here talks to a cluster.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tessy_dagster.settings import STEPS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "kubernetes"
OVERLAYS = ("dev", "prod", "prod-multinode")
# The Kubernetes versions the manifests are validated against (kubernetes-validate 1.37.0 has 1.25-1.37).
K8S_VERSIONS = ("1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0")
VLLM_IMAGE = "vllm/vllm-openai:v0.32.0"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
LWS_API = "leaderworkerset.x-k8s.io/v1"
CLUSTER_SCOPED = {"Namespace", "ResourceFlavor", "ClusterQueue", "ClusterRole", "ClusterRoleBinding"}
# The launcher's Role, exactly: (apiGroup, resource) -> verbs.
LAUNCHER_RULES = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list"},
    ("", "pods/log"): {"get"},
    ("", "services"): {"create", "get", "delete"},
}
# What each overlay's step quota (ClusterQueue tessy-gpu) must hold, in GPUs.
GPU_QUOTA = {"dev": 1, "prod": 8, "prod-multinode": 8}

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (needed for `kubectl kustomize`)")

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (the dev extra)")


@functools.lru_cache(maxsize=None)
def _render(path: str) -> tuple:
    out = subprocess.run([KUBECTL, "kustomize", path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def render(overlay: str) -> list[dict]:
    return list(_render(str(KUBE / "overlays" / overlay)))


def objects(docs, kind, api_version=None):
    return [d for d in docs if d["kind"] == kind and (api_version is None or d["apiVersion"] == api_version)]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def is_builtin(doc) -> bool:
    """Core and apps/batch/rbac...: groups without a dot, or *.k8s.io but not the SIG projects' *.x-k8s.io."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." not in group or (group.endswith(".k8s.io") and not group.endswith(".x-k8s.io"))


def validate_strict(doc: dict, version: str) -> None:
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as err:
        raise AssertionError(f"{doc['kind']}/{doc['metadata'].get('name')} at Kubernetes {version}: "
                             f"{err.message} (at {'/'.join(map(str, err.path))})") from None


def as_pod_template(name: str, template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name, "namespace": "tessy"},
            "template": template}


def env_of(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def model_servers(docs) -> list[dict]:
    return [d for d in objects(docs, "Deployment")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "model-server"]


def flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


# ---------------------------------------------------------------------------------------------------
# Rendering and schema validation


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds(overlay):
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "ConfigMap",
            "Service", "ResourceFlavor", "ClusterQueue", "LocalQueue"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_kinds_pass_strict_schema_validation(overlay, version):
    builtin = [d for d in render(overlay) if is_builtin(d)]
    assert len(builtin) >= 10
    for doc in builtin:
        validate_strict(doc, version)


def test_the_validator_rejects_a_misspelled_field():
    """A control: strict validation does catch a wrong field name in a rendered object."""
    deployment = json.loads(json.dumps(one(render("dev"), "Deployment", "teacher")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(AssertionError, match="livenesProbe"):
        validate_strict(deployment, K8S_VERSIONS[0])


def test_custom_resources_are_what_the_validator_skips():
    docs = render("prod-multinode")
    custom = {d["kind"] for d in docs if not is_builtin(d)}
    assert custom == {"ResourceFlavor", "ClusterQueue", "LocalQueue", "LeaderWorkerSet"}
    with pytest.raises(kv.SchemaNotFoundError):
        kv.validate(one(docs, "ClusterQueue", "tessy-gpu"), K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespaces(overlay):
    for doc in render(overlay):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, f"{doc['kind']} {doc['metadata']['name']} is cluster-scoped"
        else:
            assert namespace == "tessy", f"{doc['kind']} {doc['metadata']['name']} is not in namespace tessy"


def test_no_init_py_under_kubernetes():
    assert not list(KUBE.rglob("__init__.py")), "an __init__.py here shadows the kubernetes client package"


# ---------------------------------------------------------------------------------------------------
# RBAC, storage, settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_launcher_role_is_exactly_least_privilege(overlay):
    docs = render(overlay)
    role = one(docs, "Role", "tessy-launcher")
    granted = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in granted, f"{group}/{resource} granted twice"
                granted[(group, resource)] = set(rule["verbs"])
    assert granted == LAUNCHER_RULES
    binding = one(docs, "RoleBinding", "tessy-launcher")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tessy-launcher"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tessy-launcher", "namespace": "tessy"}]
    assert [b["metadata"]["name"] for b in objects(docs, "RoleBinding")] == ["tessy-launcher"]
    assert not objects(docs, "ClusterRole") and not objects(docs, "ClusterRoleBinding")
    step = one(docs, "ServiceAccount", "tessy-step")
    assert step["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shared_volumes(overlay):
    docs = render(overlay)
    for name in ("tessy-artifacts", "tessy-models"):
        assert one(docs, "PersistentVolumeClaim", name)["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_configmap_loads(overlay, tmp_path):
    from tessy_dagster.settings import TessySettings, load_settings

    config_map = one(render(overlay), "ConfigMap", "tessy-settings")  # no name hash: a fixed name
    assert set(config_map["data"]) == {"settings.json"}
    data = json.loads(config_map["data"]["settings.json"])
    assert isinstance(data, dict)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    settings = load_settings("toy", path)
    # in a cluster every heavy step runs in a GPU Job, with the overlay's own image and queue
    assert settings.launcher.mode == "kubernetes"
    kubernetes = settings.launcher.kubernetes
    assert kubernetes.job("cooperative_traces").image == "tessy-dagster-gpu:0.1.0"
    assert kubernetes.job("cooperative_traces").queue == "tessy-gpu"
    assert kubernetes.job("cooperative_traces").service_account == "tessy-step"  # a built-in default
    assert kubernetes.artifact_pvc == "tessy-artifacts" and kubernetes.model_pvc == "tessy-models"
    docs = render(overlay)
    local_queues = [q["metadata"]["name"] for q in objects(docs, "LocalQueue")]
    assert {kubernetes.job(step).queue for step in STEPS} <= set(local_queues)
    # a Job's pods fit the queue's quota
    [quota] = [r for q in objects(docs, "ClusterQueue") for g in q["spec"]["resourceGroups"]
               for f in g["flavors"] for r in [{x["name"]: x["nominalQuota"] for x in f["resources"]}]]
    for step in STEPS:
        job = kubernetes.job(step)
        assert _quantity(job.cpu) <= _quantity(quota["cpu"]), step
        assert _quantity(job.memory) <= _quantity(quota["memory"]), step


def _quantity(value: str) -> float:
    units = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "m": 1e-3}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[:-len(suffix)]) * factor
    return float(value)


def test_prod_settings_follow_examples_production():
    prod = json.loads(one(render("prod"), "ConfigMap", "tessy-settings")["data"]["settings.json"])
    example = json.loads((ROOT / "examples" / "production.json").read_text())
    assert prod["inputs"] == example["inputs"]
    assert prod["sft"] == example["sft"]
    secret_env = prod["launcher"]["kubernetes"]["secret_env"]
    for role in ("teacher", "student"):
        for generation in (prod["cooperate"]["generation"], prod["boundary"]["trace_generation"]):
            # the key's variable is filled from the server's Secret, the one its Deployment reads
            variable = generation["api_key_env"][role]
            assert secret_env[variable] == {"secret": f"{role}-api", "key": "api-key"}


# ---------------------------------------------------------------------------------------------------
# Model servers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_server_deployments(overlay):
    docs = render(overlay)
    servers = model_servers(docs)
    assert {d["metadata"]["name"] for d in servers} >= {"student"}
    for deployment in servers:
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}, f"{name}: a rolling update deadlocks on GPUs"
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "tessy-step" and pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["image"] == VLLM_IMAGE
        check_vllm_container(name, container, pod["volumes"])
        args = container["args"]
        assert flag(args, "--model").startswith("/models/")
        assert flag(args, "--served-model-name")
        assert flag(args, "--port") == "8000"
        tp = int(flag(args, "--tensor-parallel-size"))
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert int(gpus) == tp == int(container["resources"]["requests"]["nvidia.com/gpu"]), name


def check_vllm_container(name, container, volumes, probes=True):
    env = env_of(container)
    key = env["VLLM_API_KEY"]
    assert "value" not in key, f"{name}: the API key is inlined"
    assert key["valueFrom"]["secretKeyRef"]["key"] == "api-key"
    assert key["valueFrom"]["secretKeyRef"]["name"].endswith("-api")
    assert not any("value" in e and re.search(r"(key|token|password)", e["name"], re.I) for e in env.values())
    by_name = {v["name"]: v for v in volumes}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert by_name[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert mounts["/models"]["readOnly"] is True
    assert by_name[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"] == "tessy-models"
    if not probes:
        return
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health", f"{name}: {probe}"
        assert ports.get(get["port"], get["port"]) == 8000, f"{name}: {probe}"
    startup = container["startupProbe"]
    window_min = startup["failureThreshold"] * startup["periodSeconds"] / 60
    assert 30 <= window_min <= 60, f"{name}: the startup probe allows {window_min:.0f} min to load the model"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_endpoints_have_servers_that_serve_the_named_models(overlay):
    """Every http://<service>.tessy.svc:8000 the settings name is a Service on port 8000 whose pods serve
    the model folder and served name the settings give."""
    docs = render(overlay)
    settings = json.loads(one(docs, "ConfigMap", "tessy-settings")["data"]["settings.json"])
    wanted = {}
    for role, model in settings.get("inputs", {}).items():
        if isinstance(model, dict) and model.get("endpoint"):
            wanted[model["endpoint"]] = (model["path"], model.get("served_name"))
    boundary = settings.get("boundary", {})
    for role, url in boundary.get("annotator_generation", {}).get("urls", {}).items():
        wanted[url] = (boundary["annotator_model"], boundary["annotator_generation"]["served_names"][role])
    if overlay != "dev":
        assert len(wanted) == 3
    for url, (path, served) in wanted.items():
        match = re.fullmatch(r"http://([a-z0-9-]+)\.tessy\.svc:(\d+)", url)
        assert match, url
        service = one(docs, "Service", match[1])
        assert [p["port"] for p in service["spec"]["ports"]] == [int(match[2])]
        selector = service["spec"]["selector"]
        commands = []
        for deployment in objects(docs, "Deployment"):
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items():
                commands.append(" ".join(deployment["spec"]["template"]["spec"]["containers"][0]["args"]))
        for lws in objects(docs, "LeaderWorkerSet"):
            leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
            if selector.items() <= leader["metadata"]["labels"].items():
                commands.append(" ".join(leader["spec"]["containers"][0]["command"]))
        assert len(commands) == 1, f"{url}: {len(commands)} server workloads behind the Service"
        assert f"--model={path}" in commands[0], url
        if served:
            assert f"--served-model-name={served}" in commands[0], url


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_only_their_server(overlay):
    docs = render(overlay)
    for service in objects(docs, "Service"):
        selector = service["spec"]["selector"]
        templates = [d["spec"]["template"]["metadata"]["labels"] for d in objects(docs, "Deployment")]
        for lws in objects(docs, "LeaderWorkerSet"):
            templates += [lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"],
                          lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]]
        assert sum(selector.items() <= labels.items() for labels in templates) == 1, service["metadata"]["name"]


def test_dev_is_one_gpu_and_a_small_teacher():
    docs = render("dev")
    teacher = one(docs, "Deployment", "teacher")["spec"]["template"]["spec"]["containers"][0]
    assert flag(teacher["args"], "--tensor-parallel-size") == "1"
    # the toy world needs no model server, and the one GPU goes to the step Jobs
    assert one(docs, "Deployment", "teacher")["spec"]["replicas"] == 0
    assert one(docs, "Deployment", "student")["spec"]["replicas"] == 0


def test_prod_teacher_uses_tensor_parallelism():
    teacher = one(render("prod"), "Deployment", "teacher")["spec"]["template"]["spec"]["containers"][0]
    assert flag(teacher["args"], "--model") == "/models/gpt-oss-120b"
    assert int(flag(teacher["args"], "--tensor-parallel-size")) > 1


# ---------------------------------------------------------------------------------------------------
# Kueue


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kueue_objects(overlay):
    docs = render(overlay)
    for kind in ("ResourceFlavor", "ClusterQueue", "LocalQueue"):
        assert objects(docs, kind), kind
        assert all(d["apiVersion"] == KUEUE_API for d in objects(docs, kind)), kind
    flavors = {d["metadata"]["name"] for d in objects(docs, "ResourceFlavor")}
    cluster_queues = {d["metadata"]["name"]: d for d in objects(docs, "ClusterQueue")}
    local = one(docs, "LocalQueue", "tessy-gpu")
    assert local["metadata"]["namespace"] == "tessy"
    assert local["spec"]["clusterQueue"] in cluster_queues
    queue = cluster_queues[local["spec"]["clusterQueue"]]
    covered_all = set()
    for group in queue["spec"]["resourceGroups"]:
        covered = group["coveredResources"]
        covered_all |= set(covered)
        assert group["flavors"]
        for flavor in group["flavors"]:
            assert flavor["name"] in flavors, f"flavor {flavor['name']} is not a ResourceFlavor"
            # Kueue requires each flavor to list exactly the covered resources, in the same order.
            assert [r["name"] for r in flavor["resources"]] == covered
            assert all("nominalQuota" in r for r in flavor["resources"])
    assert {"cpu", "memory", "nvidia.com/gpu"} <= covered_all
    gpu = sum(int(r["nominalQuota"]) for g in queue["spec"]["resourceGroups"] for f in g["flavors"]
              for r in f["resources"] if r["name"] == "nvidia.com/gpu")
    assert gpu == GPU_QUOTA[overlay]
    # The queue must admit Jobs from the tessy namespace.
    selector = queue["spec"]["namespaceSelector"]
    assert selector == {} or selector.get("matchLabels", {}).get("kubernetes.io/metadata.name") == "tessy"


# ---------------------------------------------------------------------------------------------------
# The multi-node teacher (LeaderWorkerSet)


def test_leaderworkerset_teacher():
    docs = render("prod-multinode")
    assert not [d for d in objects(docs, "Deployment") if d["metadata"]["name"] == "teacher"]
    lws = one(docs, "LeaderWorkerSet", "teacher")
    assert lws["apiVersion"] == LWS_API
    assert lws["metadata"]["namespace"] == "tessy"
    template = lws["spec"]["leaderWorkerTemplate"]
    size = template["size"]
    assert isinstance(size, int) and size >= 2
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = template["leaderTemplate"], template["workerTemplate"]
    for version in (K8S_VERSIONS[0], K8S_VERSIONS[-1]):
        validate_strict(as_pod_template("teacher-leader", leader), version)
        validate_strict(as_pod_template("teacher-worker", worker), version)
    (lead,) = leader["spec"]["containers"]
    (work,) = worker["spec"]["containers"]
    assert lead["image"] == work["image"] == VLLM_IMAGE
    check_vllm_container("teacher leader", lead, leader["spec"]["volumes"])
    script = " ".join(lead["command"])
    assert "multi-node-serving.sh leader" in script and "$(LWS_GROUP_SIZE)" in script
    assert "--distributed-executor-backend=ray" in script
    assert "$(LWS_LEADER_ADDRESS)" in " ".join(work["command"])
    tp = int(re.search(r"--tensor-parallel-size[= ](\d+)", script)[1])
    pp = int(re.search(r"--pipeline-parallel-size[= ](\d+)", script)[1])
    gpus = [int(c["resources"]["limits"]["nvidia.com/gpu"]) for c in (lead, work)]
    assert pp == size and gpus == [tp, tp], "tp = GPUs per pod, pp = pods in the group"
    mounts = {m["mountPath"]: m["name"] for m in work["volumeMounts"]}
    volumes = {v["name"]: v for v in worker["spec"]["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "/models" in mounts
    assert one(docs, "Service", "teacher")["spec"]["selector"].get("role") == "leader"


# ---------------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(overlay):
    docs = render(overlay)
    images = []
    for doc in docs:
        for pod in pod_specs(doc):
            images += [c["image"] for c in pod.get("initContainers", []) + pod["containers"]]
    assert images
    for image in images:
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    prepull = one(docs, "DaemonSet", "tessy-gpu-prepull")["spec"]["template"]["spec"]
    assert prepull["initContainers"][0]["image"].split(":")[0].endswith("tessy-dagster-gpu")


def pod_specs(doc):
    if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        yield doc["spec"]["template"]["spec"]
    elif doc["kind"] == "LeaderWorkerSet":
        yield doc["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
        yield doc["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]


def test_dockerfiles():
    cpu = (KUBE / "images" / "cpu.Dockerfile").read_text()
    gpu = (KUBE / "images" / "gpu.Dockerfile").read_text()
    assert "FROM python:3.11-slim" in cpu
    assert re.search(r'pip install "torch==2\.13\.0" --index-url https://download\.pytorch\.org/whl/cpu', cpu)
    assert re.search(r"pip install \.( |$)", cpu, re.M)
    assert "python3.11" in gpu and 'pip install "torch==2.13.0"' in gpu and 'pip install ".[vllm]"' in gpu
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in pyproject and '"vllm==0.32.0"' in pyproject
    for text in (cpu, gpu):
        for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
            for source in line.split():
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repo root)"


# ---------------------------------------------------------------------------------------------------
# Dagster's Helm values


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((KUBE / "dagster" / "values.yaml").read_text())


def test_helm_values(values):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    # the same driver as the instance file the PostgreSQL test runs (psycopg2; SQLAlchemy's default is psycopg 3)
    instance = yaml.safe_load((KUBE / "dagster" / "dagster.yaml").read_text())
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["global"]["serviceAccountName"] == "tessy-launcher"
    assert values["serviceAccount"]["create"] is False
    user = values["dagster-user-deployments"]
    assert user["enabled"] is True and user["serviceAccount"]["create"] is False
    (deployment,) = user["deployments"]
    assert deployment["image"]["repository"].rsplit("/", 1)[-1] == "tessy-dagster"
    assert deployment["image"]["tag"] and deployment["image"]["tag"] != "latest"
    args = deployment.get("codeServerArgs") or deployment.get("dagsterApiGrpcArgs")
    assert args == ["-m", "tessy_dagster.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods get env and volumes
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env == {"TESSY_HOME": "/tessy", "TESSY_SETTINGS": "/etc/tessy/settings.json", "TESSY_PROFILE": "toy"}
    volumes = {v["name"]: v for v in deployment["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in deployment["volumeMounts"]}
    assert volumes[mounts["/tessy"]]["persistentVolumeClaim"]["claimName"] == "tessy-artifacts"
    # the same model folder paths in run pods as in step Jobs (launcher.kubernetes.model_mount)
    assert volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"] == "tessy-models"
    settings_dir = str(Path(env["TESSY_SETTINGS"]).parent)
    assert volumes[mounts[settings_dir]]["configMap"]["name"] == "tessy-settings"


def test_helm_values_name_objects_the_overlays_create(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for overlay in OVERLAYS:
        docs = render(overlay)
        one(docs, "ServiceAccount", values["global"]["serviceAccountName"])
        for volume in deployment["volumes"]:
            if "persistentVolumeClaim" in volume:
                one(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
            if "configMap" in volume:
                one(docs, "ConfigMap", volume["configMap"]["name"])


@pytest.mark.parametrize("version", (K8S_VERSIONS[0], K8S_VERSIONS[-1]))
def test_helm_values_pod_fragments_are_valid_kubernetes(values, version):
    """The env, volumes, volume mounts and resources the chart copies into the code server's pod (and,
    through the container context, into run pods) pass strict schema validation as a Pod."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tessy-code-server", "namespace": "tessy"},
           "spec": {"serviceAccountName": values["global"]["serviceAccountName"],
                    "volumes": deployment["volumes"],
                    "containers": [{"name": "dagster", "image": "tessy-dagster:0.1.0",
                                    "env": deployment["env"], "volumeMounts": deployment["volumeMounts"],
                                    "resources": deployment["resources"]}]}}
    validate_strict(pod, version)
