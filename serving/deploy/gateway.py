"""The gateway as a Deployment of several replicas behind one Service, reading its catalogue (the manifest and label
files) and its experiments from ConfigMaps. Every replica watches the experiments file and reloads it when the
ConfigMap changes, so replicas run the same experiments; the admin API stays off (it writes the file, which a
ConfigMap mount does not allow: edit the ConfigMap instead)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from serving.deploy import triton
from serving.deploy.objects import (
    Site,
    config_map,
    deployment,
    digest,
    disruption_budget,
    http_probe,
    port,
    restricted,
    service,
    service_monitor,
)
from serving.deploy.repository import DeployError, Repository
from serving.manifest import MANIFEST

NAME = "gateway"
COMPONENT = "gateway"
PORT = 8080
CATALOGUE = "tritonzoo-catalogue"
EXPERIMENTS = "gateway-experiments"
EXPERIMENTS_FILE = "experiments.json"
CATALOGUE_DIR = "/etc/tritonzoo/catalogue"
EXPERIMENTS_DIR = "/etc/tritonzoo/experiments"
SECRET = "tritonzoo-gateway"  # optional: key `api-keys`, comma-separated inference keys
CONFIG_MAP_LIMIT = 1024 * 1024  # bytes: Kubernetes refuses larger ConfigMaps


@dataclass(frozen=True)
class GatewayPlan:
    image: str
    replicas: int = 2
    cpu: str = "1"
    memory: str = "512Mi"
    prometheus_url: str = ""  # canary rollbacks read every replica's errors here; empty: each replica's own view


def catalogue_map(site: Site, repo: Repository) -> dict:
    """The manifest and every model's labels file: all the gateway and Locust read of the repository."""
    data = {MANIFEST: repo.manifest_text()}
    for name, model in repo.models.items():
        labels = repo.path / name / model.labels
        data[label_key(name, model.labels)] = labels.read_text() if labels.exists() else ""
    size = sum(len(v.encode()) for v in data.values())
    if size > CONFIG_MAP_LIMIT * 0.9:
        raise DeployError(f"the catalogue (manifest and labels) is {size} bytes, too close to a ConfigMap's "
                          f"{CONFIG_MAP_LIMIT} bytes")
    return config_map(site, CATALOGUE, "catalogue", data)


def label_key(model: str, labels: str) -> str:
    return f"{model}.{labels.replace('/', '.')}"


def catalogue_volume(repo: Repository) -> dict:
    """The catalogue laid out as the repository is: manifest.json, and <model>/<labels file>."""
    items = [{"key": MANIFEST, "path": MANIFEST}]
    items += [{"key": label_key(n, m.labels), "path": f"{n}/{m.labels}"} for n, m in repo.models.items()]
    return {"name": "catalogue", "configMap": {"name": CATALOGUE, "items": items}}


def experiments_map(site: Site) -> dict:
    """No experiments yet: edit this ConfigMap (see docs/deploy.md) and every replica reloads it."""
    return config_map(site, EXPERIMENTS, COMPONENT, {EXPERIMENTS_FILE: json.dumps({}, indent=2) + "\n"})


def arguments(plan: GatewayPlan) -> list[str]:
    triton_service = f"{triton.NAME}.{{namespace}}.svc"
    args = ["--host", "0.0.0.0", "--port", str(PORT), "--repo", CATALOGUE_DIR,
            "--triton-grpc", f"{triton_service}:{triton.PORTS['grpc']}",
            "--triton-http", f"{triton_service}:{triton.PORTS['http']}",
            "--experiments", f"{EXPERIMENTS_DIR}/{EXPERIMENTS_FILE}", "--read-only-experiments"]
    if plan.prometheus_url:
        args += ["--prometheus-url", plan.prometheus_url]
    return args


def gateway_objects(site: Site, repo: Repository, plan: GatewayPlan) -> list[dict]:
    catalogue = catalogue_map(site, repo)
    args = [a.replace("{namespace}", site.namespace) for a in arguments(plan)]
    container = {
        "name": NAME, "image": plan.image, "command": ["python", "-m", "serving.gateway"], "args": args,
        "ports": [port("http", PORT)],
        "readinessProbe": http_probe("/readyz", "http", period_s=5, failures=2),
        "livenessProbe": http_probe("/healthz", "http", period_s=10, failures=3),
        "resources": {"requests": {"cpu": plan.cpu, "memory": plan.memory}, "limits": {"memory": plan.memory}},
        "env": [{"name": "TRITONZOO_API_KEY",
                 "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "api-keys", "optional": True}}}],
        "volumeMounts": [{"name": "catalogue", "mountPath": CATALOGUE_DIR, "readOnly": True},
                         {"name": "experiments", "mountPath": EXPERIMENTS_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": restricted(),
    }
    pod = {"containers": [container],
           # Not a subPath mount: the kubelet updates a ConfigMap mounted as a folder in place, and the gateway
           # reloads it; a subPath mount would never change.
           "volumes": [catalogue_volume(repo), {"name": "experiments", "configMap": {"name": EXPERIMENTS}},
                       {"name": "tmp", "emptyDir": {}}]}
    # The catalogue is read at start: a new manifest rolls the replicas. Experiments are reloaded live: no restart.
    annotations = {"tritonzoo/catalogue-sha256": digest(*catalogue["data"].values())}
    svc = service(site, NAME, COMPONENT, {"http": PORT})
    return [catalogue, experiments_map(site), deployment(site, NAME, COMPONENT, pod, plan.replicas, annotations),
            svc, service_monitor(site, svc, "http"), disruption_budget(site, NAME, COMPONENT)]
