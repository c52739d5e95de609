"""Gateway metrics (prometheus-client), in seconds, with sub-millisecond buckets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
                   0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        arm = ["model", "experiment", "arm"]
        self.requests = Counter("tritonzoo_gateway_requests", "Inference requests answered", [*arm, "code"],
                                registry=self.registry)
        self.latency = Histogram("tritonzoo_gateway_request_seconds", "Gateway request latency", arm,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("tritonzoo_gateway_errors", "Failed requests by reason", ["reason"],
                              registry=self.registry)
        self.shadow = Counter("tritonzoo_gateway_shadow_requests", "Shadow requests by outcome",
                              ["experiment", "model", "outcome"], registry=self.registry)
        self.shadow_agreement = Counter("tritonzoo_gateway_shadow_agreement",
                                        "Shadow top-1 predictions equal to the primary's", ["experiment", "model"],
                                        registry=self.registry)
        self.shadow_latency = Histogram("tritonzoo_gateway_shadow_seconds", "Inference latency, primary vs shadow",
                                        ["experiment", "role"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.weight = Gauge("tritonzoo_gateway_arm_weight", "Current experiment arm weights",
                            ["experiment", "arm"], registry=self.registry)
        self.triton_up = Gauge("tritonzoo_gateway_triton_ready", "1 when Triton answers ready",
                               registry=self.registry)
        # Every inference an arm answered or failed, as ArmHealth counts them: a canary's rollback reads every
        # replica's from Prometheus.
        self.arm_requests = Counter("tritonzoo_gateway_arm_requests", "Inferences per experiment arm by outcome",
                                    ["experiment", "model", "outcome"], registry=self.registry)
        self._answered: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}
        self._arm_children: dict[tuple[str, str, bool], Counter] = {}

    def answered(self, arm: tuple[str, str, str], seconds: float) -> None:
        """A successful request of (model, experiment, arm). Its children are cached: labels() takes a lock."""
        children = self._answered.get(arm)
        if children is None:
            children = self._answered[arm] = (self.latency.labels(*arm), self.requests.labels(*arm, "200"))
        children[0].observe(seconds)
        children[1].inc()

    def set_weights(self, experiment: str, arms: dict[str, float], previous: dict[str, float]) -> None:
        for arm in previous.keys() - arms.keys():
            self.weight.remove(experiment, arm)
        total = sum(arms.values()) or 1.0
        for arm, weight in arms.items():
            self.weight.labels(experiment, arm).set(weight / total)

    def count_arm(self, experiment: str, model: str, success: bool) -> None:
        child = self._arm_children.get((experiment, model, success))
        if child is None:
            child = self._arm_children[experiment, model, success] = self.arm_requests.labels(
                experiment, model, "ok" if success else "failed")
        child.inc()

    def prepare_arm(self, experiment: str, model: str) -> None:
        """Both outcomes' series at 0 before the first request, so that increase() counts that request too."""
        for success in (True, False):
            key = (experiment, model, success)
            if key not in self._arm_children:
                self._arm_children[key] = self.arm_requests.labels(experiment, model, "ok" if success else "failed")
