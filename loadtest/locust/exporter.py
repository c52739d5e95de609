"""Locust's requests as Prometheus metrics, in seconds with sub-millisecond buckets (Locust's own stats round to ms).

Fed from `events.request`; every request is counted, failures included, under an `outcome` label, so no figure
built on these metrics can drop a failure.
"""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
                   0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
                   1.0, 2.5, 5.0, 10.0)
LABELS = ["request_type", "name", "outcome"]
MAX_ERROR_LEN = 80  # error label: bounded, so one odd message per request cannot explode the series count


class LoadMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram("tritonzoo_locust_request_seconds", "Locust request latency, failures included",
                                 LABELS, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("tritonzoo_locust_requests", "Locust requests by outcome", LABELS,
                                registry=self.registry)
        self._children: dict[tuple[str, str, str], tuple] = {}
        self.errors = Counter("tritonzoo_locust_errors", "Locust failures by error", ["request_type", "name", "error"],
                              registry=self.registry)

    def on_request(self, request_type: str, name: str, response_time: float, exception: BaseException | None = None,
                   **_: object) -> None:
        """An `events.request` listener; `response_time` is in milliseconds, unrounded."""
        key = (request_type, name, "failure" if exception is not None else "success")
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a key: once per series, not once per request
            children = self._children[key] = (self.latency.labels(*key), self.requests.labels(*key))
        children[0].observe(response_time / 1000.0)
        children[1].inc()
        if exception is not None:
            self.errors.labels(request_type, name, error_label(exception)).inc()


def error_label(exception: BaseException) -> str:
    text = f"{type(exception).__name__}: {exception}"
    return text if len(text) <= MAX_ERROR_LEN else text[:MAX_ERROR_LEN - 3] + "..."


def serve_exporter(registry: CollectorRegistry, ports: list[int]) -> int:
    """Export on the first free port of `ports` (forked Locust workers each take the next one); loopback only."""
    for port in ports:
        if _free(port):
            try:
                start_http_server(port, addr="127.0.0.1", registry=registry)
                return port
            except OSError:  # a sibling worker took it between the check and the bind
                continue
    raise RuntimeError(f"no free exporter port among {ports}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        # As the exporter's HTTP server binds: a port whose last exporter left connections in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
