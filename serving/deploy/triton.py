"""Triton as a Deployment: NVIDIA's container of the repository's release, reading the repository from object storage
(s3://, gs://, as://, which Triton reads natively) or from a volume, with probes, resources and its metrics port."""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.deploy.objects import (
    Site,
    deployment,
    disruption_budget,
    http_probe,
    port,
    restricted,
    service,
    service_monitor,
)
from serving.deploy.repository import DeployError, Repository
from serving.release import Release

NAME = "triton"
COMPONENT = "inference-server"
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
MOUNT = "/models"
OBJECT_STORES = ("s3://", "gs://", "as://")
# Credentials for object storage, read by Triton from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION for S3): optional, so that workload identity (IRSA, GKE) needs no Secret.
STORE_SECRET = "tritonzoo-model-store"
# Google Cloud Storage reads no key from the environment: GOOGLE_APPLICATION_CREDENTIALS names a key file, else the
# pod's attached service account (workload identity) answers. A Secret's key file is mounted here.
GCS_KEY_DIR = "/var/run/secrets/tritonzoo/gcs"
GCS_KEY_FILE = "key.json"
# GPU feature discovery's node labels of the GPU's compute capability, e.g. 9 and 0 on an H100.
CC_MAJOR, CC_MINOR = "nvidia.com/gpu.compute.major", "nvidia.com/gpu.compute.minor"
# Models load before Triton opens its ports: the startup probe gives them this long before liveness counts.
STARTUP_BUDGET_S = 600
BASE_MEMORY_MB = 1024       # the server itself, its backends and request buffers
UNMEASURED_MODEL_MB = 512   # a model the build did not measure, where no other model was measured either


@dataclass(frozen=True)
class ModelStore:
    """Where Triton reads the repository: an object-storage URL, or a PersistentVolumeClaim holding a copy of it."""

    url: str = ""
    claim: str = ""

    @classmethod
    def parse(cls, value: str) -> ModelStore:
        value = (value or "").strip()
        if value.startswith(OBJECT_STORES) and len(value) > 5:
            return cls(url=value.rstrip("/"))
        if value.startswith("pvc:") and value[4:]:
            return cls(claim=value[4:])
        raise DeployError(f"--models-from takes s3://BUCKET/PATH (or gs://, as://), which Triton reads natively, or "
                          f"pvc:CLAIM, a PersistentVolumeClaim holding the published repository; got {value!r}")

    @property
    def repository(self) -> str:
        return self.url or MOUNT


@dataclass(frozen=True)
class TritonPlan:
    store: ModelStore
    release: Release
    image: str = ""               # default: the release's container
    cpu: str = "2"
    memory_mb: int = 0            # 0: from the build's measured peaks (see memory_request)
    service_account: str = ""     # the pods' Kubernetes service account: workload identity (GKE) or IRSA (EKS)
    gcs_key_secret: str = ""      # a Secret whose key `key.json` is a Google service account key

    def check(self) -> None:
        if self.store.url.startswith("gs://") and not (self.service_account or self.gcs_key_secret):
            raise DeployError("gs:// needs credentials Triton can find: --service-account NAME (workload identity: "
                              "a Kubernetes service account bound to a Google one) or --gcs-key-secret NAME (a "
                              f"Secret holding a service account key as {GCS_KEY_FILE})")


def memory_request(repo: Repository, models: list[str]) -> int:
    """MiB for the server plus every model it loads: the build's measured peak of each, where it measured one; an
    unmeasured model counts as the largest measured one."""
    measured = [mb for m in models if (mb := repo.models[m].memory_mb)]
    fallback = max(measured, default=UNMEASURED_MODEL_MB)
    total = BASE_MEMORY_MB + sum(repo.models[m].memory_mb or fallback for m in models)
    return int(math.ceil(total / 64) * 64)


def arguments(store: ModelStore, models: list[str]) -> list[str]:
    """tritonserver's arguments: explicit model control so that only `models` load (a TensorRT plan cannot load on a
    CPU node), strict readiness so that a pod serves only once every model is ready, latency summaries for metrics."""
    return [f"--model-repository={store.repository}", "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in models),
            "--strict-readiness=true", "--exit-on-error=false", "--disable-auto-complete-config",
            "--metrics-config=summary_latencies=true",
            *(f"--{name}-port={number}" for name, number in PORTS.items())]


def triton_objects(site: Site, repo: Repository, plan: TritonPlan) -> list[dict]:
    models = repo.cpu_models  # the gpu overlay adds the GPU-only ones
    if not models:
        raise DeployError("every model of the repository needs a GPU; the base serves CPU models: publish a CPU "
                          "runtime too (the gpu overlay adds the GPU-only models)")
    memory = plan.memory_mb or memory_request(repo, models)
    container = {
        # No `command`: the NGC image's entrypoint (/opt/nvidia/nvidia_entrypoint.sh, which sets up CUDA's driver
        # compatibility) runs its arguments, as NVIDIA's own Helm charts pass tritonserver.
        "name": NAME, "image": plan.image or plan.release.image,
        "args": ["tritonserver", *arguments(plan.store, models)],
        "ports": [port(name, number) for name, number in PORTS.items()],
        "startupProbe": http_probe("/v2/health/live", "http", period_s=10, failures=STARTUP_BUDGET_S // 10),
        "livenessProbe": http_probe("/v2/health/live", "http", period_s=10, failures=3),
        "readinessProbe": http_probe("/v2/health/ready", "http", period_s=5, failures=2),
        "resources": {"requests": {"cpu": plan.cpu, "memory": f"{memory}Mi"},
                      "limits": {"memory": f"{memory}Mi"}},
        "envFrom": [{"secretRef": {"name": STORE_SECRET, "optional": True}}],
        "securityContext": restricted(user=None, read_only_root=False),
    }
    pod: dict = {"containers": [container], "terminationGracePeriodSeconds": 30}
    if plan.store.claim:
        _mount(pod, {"name": "models", "persistentVolumeClaim": {"claimName": plan.store.claim, "readOnly": True}},
               MOUNT)
    _credentials(pod, plan)
    svc = service(site, NAME, COMPONENT, PORTS)
    return [deployment(site, NAME, COMPONENT, pod), svc, service_monitor(site, svc, "metrics"),
            disruption_budget(site, NAME, COMPONENT)]


def _mount(pod: dict, volume: dict, path: str) -> None:
    pod["containers"][0].setdefault("volumeMounts", []).append({"name": volume["name"], "mountPath": path,
                                                                "readOnly": True})
    pod.setdefault("volumes", []).append(volume)


def _credentials(pod: dict, plan: TritonPlan) -> None:
    """Object-storage credentials beyond the optional S3 Secret: a service account (workload identity), or a
    mounted Google key file."""
    plan.check()
    if plan.service_account:
        pod["serviceAccountName"] = plan.service_account
    if plan.gcs_key_secret:
        _mount(pod, {"name": "gcs-key", "secret": {"secretName": plan.gcs_key_secret, "items": [
            {"key": GCS_KEY_FILE, "path": GCS_KEY_FILE}]}}, GCS_KEY_DIR)
        pod["containers"][0]["env"] = [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                                        "value": f"{GCS_KEY_DIR}/{GCS_KEY_FILE}"}]


def gpu_patch(repo: Repository, plan: TritonPlan, gpus: int = 1) -> list[dict]:
    """JSON patch for GPU nodes: a GPU per pod, the taint GPU nodes carry tolerated, only nodes whose GPU has a plan
    of every TensorRT model, the GPU-only models loaded."""
    container = "/spec/template/spec/containers/0"
    memory = plan.memory_mb or memory_request(repo, repo.cpu_models + repo.gpu_models)
    affinity = gpu_affinity(repo)
    return [
        {"op": "add", "path": f"{container}/resources/requests/memory", "value": f"{memory}Mi"},
        {"op": "add", "path": f"{container}/resources/limits",
         "value": {"memory": f"{memory}Mi", "nvidia.com/gpu": gpus}},
        {"op": "add", "path": "/spec/template/spec/tolerations",
         "value": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        *([{"op": "add", "path": "/spec/template/spec/affinity", "value": affinity}] if affinity else []),
        *({"op": "add", "path": f"{container}/args/-", "value": f"--load-model={m}"} for m in repo.gpu_models),
    ]


def gpu_affinity(repo: Repository) -> dict | None:
    """Nodes whose GPU's compute capability (GPU feature discovery's labels) has a plan in every TensorRT model: a
    plan loads only on the GPU generation it was built for. None when no model has plans."""
    plans = [set(s.capabilities) for s in repo.models.values() if s.capabilities]
    if not plans:
        return None
    common = sorted(set.intersection(*plans), key=lambda c: tuple(int(x) for x in c.split(".")))
    if not common:
        raise DeployError("no GPU compute capability has a plan in every TensorRT model ("
                          + "; ".join(f"{m}: {', '.join(s.capabilities)}" for m, s in repo.models.items()
                                      if s.capabilities) + "): build every plan on the same GPU generation")
    terms = [{"matchExpressions": [{"key": CC_MAJOR, "operator": "In", "values": [c.split(".")[0]]},
                                   {"key": CC_MINOR, "operator": "In", "values": [c.split(".")[1]]}]} for c in common]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def cpu_patch(repo: Repository, plan: TritonPlan) -> list[dict]:
    """JSON patch for CPU nodes: CPU limit equal to the request (Guaranteed QoS: the capacity plan was measured on
    dedicated cores), and kept off GPU nodes, whose GPUs it would not use."""
    memory = plan.memory_mb or memory_request(repo, repo.cpu_models)
    return [
        {"op": "add", "path": "/spec/template/spec/containers/0/resources/limits",
         "value": {"cpu": plan.cpu, "memory": f"{memory}Mi"}},
        {"op": "add", "path": "/spec/template/spec/affinity",
         "value": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
             {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}]}}}},
    ]
