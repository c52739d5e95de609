"""`invoke k8s`: from the task's options to the written manifests of Triton, the gateway, autoscaling and monitors.

The Locust pods are the load generator's (loadtest/deploy/): loadtest.deploy.generate writes them beside these,
through write_kustomize's `extra` (serving/ imports nothing from loadtest/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.deploy import autoscaling, gateway, triton
from serving.deploy.kustomize import DeployPlan, write_kustomize
from serving.deploy.objects import Site
from serving.deploy.repository import DeployError, Repository, read_repository
from serving.deploy.triton_release import release_for


@dataclass(frozen=True)
class K8sOptions:
    models_from: str
    namespace: str = "tritonzoo"
    image: str = "tritonzoo:0.1.0"
    triton_image: str = ""
    triton_cpu: str = "2"
    triton_memory_mb: int = 0
    min_replicas: int = 2
    max_replicas: int = 8
    queue_target_us: int = 0
    gateway_replicas: int = 2
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    monitor_labels: str = ""
    scrape_interval: str = "5s"
    adapter_namespace: str = "monitoring"
    release: str = ""             # default: the release the manifest records
    service_account: str = ""
    gcs_key_secret: str = ""
    monitors: bool = True


def _labels(text: str) -> dict[str, str]:
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if any("=" not in p for p in pairs):
        raise DeployError(f"--monitor-labels takes key=value pairs separated by commas, got {text!r}")
    return dict(p.split("=", 1) for p in pairs)


def plan_for(repo: Repository, options: K8sOptions) -> DeployPlan:
    if not 1 <= options.min_replicas <= options.max_replicas or options.gateway_replicas < 1:
        raise DeployError("replicas: need 1 <= --min-replicas <= --max-replicas and --gateway-replicas >= 1")
    site = Site(options.namespace, _labels(options.monitor_labels), options.scrape_interval, options.monitors)
    triton_plan = triton.TritonPlan(triton.ModelStore.parse(options.models_from),
                                    release_for(repo, options.release), options.triton_image, options.triton_cpu,
                                    options.triton_memory_mb, options.service_account, options.gcs_key_secret)
    triton_plan.check()
    gateway_plan = gateway.GatewayPlan(options.image, options.gateway_replicas, prometheus_url=options.prometheus_url)
    scale = autoscaling.ScalePlan(options.min_replicas, options.max_replicas, options.queue_target_us)
    return DeployPlan(site, triton_plan, gateway_plan, scale, options.adapter_namespace)


def generate(repo_path: Path, out: Path, options: K8sOptions) -> list[Path]:
    """Read the repository, plan, write: the files written, for the task to list."""
    repo = read_repository(repo_path)
    return write_kustomize(repo, out, plan_for(repo, options))
