"""Small builders for the Kubernetes objects the zoo needs: plain dicts, so tests read them as kubectl would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PART_OF = "tritonzoo"
MONITORING = "monitoring.coreos.com/v1"  # Prometheus Operator's API group


@dataclass(frozen=True)
class Site:
    """Where everything is deployed: namespace, labels Prometheus selects ServiceMonitors by, scrape interval."""

    namespace: str = "tritonzoo"
    monitor_labels: dict[str, str] = field(default_factory=dict)
    scrape_interval: str = "5s"
    monitors: bool = True  # ServiceMonitors need the Prometheus Operator's CRDs: without them an apply fails


def selector(name: str) -> dict[str, str]:
    """The labels a component's Service and Deployment select its pods by."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def labels(name: str, component: str) -> dict[str, str]:
    return {**selector(name), "app.kubernetes.io/component": component}


def meta(site: Site, name: str, component: str, **extra) -> dict:
    return {"name": name, "namespace": site.namespace, "labels": labels(name, component), **extra}


def port(name: str, number: int) -> dict:
    return {"name": name, "containerPort": number, "protocol": "TCP"}


def http_probe(path: str, port_name: str, period_s: int = 10, failures: int = 3, timeout_s: int = 2) -> dict:
    return {"httpGet": {"path": path, "port": port_name}, "periodSeconds": period_s, "failureThreshold": failures,
            "timeoutSeconds": timeout_s}


def deployment(site: Site, name: str, component: str, pod_spec: dict, replicas: int | None = None,
               annotations: dict[str, str] | None = None) -> dict:
    """A Deployment; `replicas` None leaves the count to a HorizontalPodAutoscaler (an apply would reset it)."""
    spec: dict = {"selector": {"matchLabels": selector(name)},
                  "template": {"metadata": {"labels": labels(name, component)}, "spec": pod_spec}}
    if annotations:
        spec["template"]["metadata"]["annotations"] = annotations
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(site, name, component), "spec": spec}


def service(site: Site, name: str, component: str, ports: dict[str, int], pods: str | None = None,
            headless: bool = False) -> dict:
    """A Service selecting the pods of component `pods` (default: `name`), its ports named as the containers' are."""
    spec: dict = {"selector": selector(pods or name),
                  "ports": [{"name": p, "port": n, "targetPort": p, "protocol": "TCP"} for p, n in ports.items()]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(site, name, component), "spec": spec}


def service_monitor(site: Site, service_object: dict, port_name: str, path: str = "/metrics") -> dict:
    """A Prometheus Operator ServiceMonitor scraping one named port of a Service's endpoints."""
    metadata = service_object["metadata"]
    monitor = meta(site, metadata["name"], metadata["labels"]["app.kubernetes.io/component"])
    monitor["labels"] = {**monitor["labels"], **site.monitor_labels}
    return {"apiVersion": MONITORING, "kind": "ServiceMonitor", "metadata": monitor,
            "spec": {"selector": {"matchLabels": dict(metadata["labels"])},
                     "namespaceSelector": {"matchNames": [site.namespace]},
                     "endpoints": [{"port": port_name, "path": path, "interval": site.scrape_interval}]}}


def config_map(site: Site, name: str, component: str, data: dict[str, str] | None = None,
               binary: dict[str, str] | None = None) -> dict:
    """A ConfigMap; `binary` holds base64 text (binaryData)."""
    out: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(site, name, component)}
    if data:
        out["data"] = data
    if binary:
        out["binaryData"] = binary
    return out


def disruption_budget(site: Site, name: str, component: str) -> dict:
    """At most one pod of the component down at a time through voluntary disruptions (drains, upgrades)."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(site, name, component),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}}}


def digest(*parts: str | bytes) -> str:
    """A checksum for a pod annotation: pods restart when the content they read only at start changes."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()[:16]


def restricted(user: int | None = 65532, read_only_root: bool = True) -> dict:
    """A container security context that drops what the zoo's own processes never need."""
    context: dict = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                     "readOnlyRootFilesystem": read_only_root}
    if user is not None:
        context.update(runAsNonRoot=True, runAsUser=user)
    return context
