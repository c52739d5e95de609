"""Scale Triton on its queue time per request: a HorizontalPodAutoscaler on a custom metric that prometheus-adapter
serves from Triton's own counters, and the adapter rule that defines it.

Queue time is what grows first when a replica runs short: dynamic batching holds a request for at most its
configured delay, so any queueing beyond that is backlog. CPU utilisation would not say so (a Triton replica busy
with batches of 64 is busy and fine), and request rate says nothing of what a replica can take.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from serving.deploy.objects import Site, config_map, meta
from serving.deploy.repository import Repository

# Triton's cumulative counters (Triton 2.51 exports no latency histograms): queue microseconds and successful
# requests, per model, scraped from each pod.
QUEUE_US = "nv_inference_queue_duration_us"
REQUESTS = "nv_inference_request_success"
METRIC = "triton_queue_time_per_request_us"
RATE_WINDOW = "1m"
MIN_TARGET_US = 1000
ADAPTER_CONFIG = "tritonzoo-adapter-rules"


@dataclass(frozen=True)
class ScalePlan:
    min_replicas: int = 2
    max_replicas: int = 8
    queue_target_us: int = 0  # 0: twice the longest dynamic-batching delay of the served models, at least 1 ms


def queue_target(repo: Repository, plan: ScalePlan) -> int:
    """Microseconds of queue per request above which Triton scales out: twice what dynamic batching waits on purpose
    (the longest max_queue_delay of the repository's models), at least MIN_TARGET_US."""
    if plan.queue_target_us:
        return plan.queue_target_us
    return max(MIN_TARGET_US, 2 * max((m.max_queue_delay_us for m in repo.models.values()), default=0))


def adapter_rule() -> dict:
    """prometheus-adapter's rule: per pod, queue microseconds per successful request over the last minute. The
    ServiceMonitor's targets carry `namespace` and `pod` labels (the Prometheus Operator adds them), which the rule
    maps to Kubernetes resources so the HPA can ask for the metric per Triton pod."""
    matchers = "<<.LabelMatchers>>"
    return {
        "seriesQuery": f'{QUEUE_US}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{QUEUE_US}$", "as": METRIC},
        "metricsQuery": (f"sum(rate({QUEUE_US}{{{matchers}}}[{RATE_WINDOW}])) by (<<.GroupBy>>) / "
                         f"clamp_min(sum(rate({REQUESTS}{{{matchers}}}[{RATE_WINDOW}])) by (<<.GroupBy>>), 0.001)"),
    }


def adapter_objects(adapter_namespace: str) -> tuple[dict, dict]:
    """The rule as a ConfigMap holding a complete prometheus-adapter config (for an adapter that serves only this),
    and as values for the prometheus-community/prometheus-adapter Helm chart (`rules.custom`). The values leave the
    chart's default rules as they are; Helm replaces a list it is given, so an adapter that already has custom
    rules needs this one appended to them (docs/deploy.md says how), never these values alone."""
    site = Site(namespace=adapter_namespace)
    config = yaml.safe_dump({"rules": [adapter_rule()]}, sort_keys=False)
    return config_map(site, ADAPTER_CONFIG, "autoscaling", {"config.yaml": config}), \
        {"rules": {"custom": [adapter_rule()]}}


def autoscaler(site: Site, repo: Repository, plan: ScalePlan, target: str) -> dict:
    """Between min and max replicas of the `target` Deployment, on the average queue time per request of its pods.
    Scaling down waits five minutes of lower load: a replica removed too soon is a replica started again."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(site, target, "autoscaling"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": plan.min_replicas, "maxReplicas": plan.max_replicas,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": METRIC},
                "target": {"type": "AverageValue", "averageValue": str(queue_target(repo, plan))}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
