from __future__ import annotations

import socket

from prometheus_client import generate_latest

from loadtest.locust.exporter import LoadMetrics, error_label, serve_exporter
from serving.triton import free_ports


def sample(metrics: LoadMetrics, metric: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(metric, labels) or 0.0


def test_hook_records_sub_millisecond_latency_in_seconds() -> None:
    m = LoadMetrics()
    m.on_request(request_type="POST", name="m", response_time=0.3, response_length=10, exception=None, context={})
    labels = {"request_type": "POST", "name": "m", "outcome": "success"}
    assert sample(m, "tritonzoo_locust_request_seconds_bucket", **labels, le="0.00025") == 0
    assert sample(m, "tritonzoo_locust_request_seconds_bucket", **labels, le="0.0005") == 1
    assert abs(sample(m, "tritonzoo_locust_request_seconds_sum", **labels) - 0.0003) < 1e-12
    assert sample(m, "tritonzoo_locust_requests_total", **labels) == 1


def test_failures_are_counted_and_kept_in_the_latency_figures() -> None:
    m = LoadMetrics()
    m.on_request(request_type="grpc", name="m", response_time=12.0, exception=ConnectionError("refused"))
    failure = {"request_type": "grpc", "name": "m", "outcome": "failure"}
    assert sample(m, "tritonzoo_locust_requests_total", **failure) == 1
    assert sample(m, "tritonzoo_locust_request_seconds_count", **failure) == 1
    assert sample(m, "tritonzoo_locust_errors_total", request_type="grpc", name="m",
                  error="ConnectionError: refused") == 1


def test_error_labels_are_bounded() -> None:
    assert len(error_label(RuntimeError("x" * 500))) == 80


def test_exporter_takes_the_next_free_port_of_its_range() -> None:
    ports = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[0]))
        base = ports[0]
        m = LoadMetrics()
        m.on_request(request_type="POST", name="m", response_time=1.0)
        port = serve_exporter(m.registry, ports)
    assert port != base
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert b"tritonzoo_locust_requests_total" in resp.read()
    assert b"tritonzoo_locust_requests_total" in generate_latest(m.registry)
