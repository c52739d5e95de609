from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from loadtest.metrics.prometheus import (
    PromClient,
    PrometheusError,
    PrometheusServer,
    check_config,
    scrape_config,
    write_config,
)
from serving.triton import free_ports

needs_promtool = pytest.mark.needs_tool("promtool")
needs_prometheus = pytest.mark.needs_tool("prometheus")
TARGETS = {"triton": ["127.0.0.1:8002"], "gateway": ["127.0.0.1:8080"], "locust": ["127.0.0.1:9646", "127.0.0.1:9647"]}


def test_config_has_one_job_per_target_kind_on_loopback() -> None:
    config = scrape_config(TARGETS, interval_s=0.5)
    assert config["global"]["scrape_interval"] == "500ms" == config["global"]["scrape_timeout"]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == TARGETS
    assert "gateway" not in {j["job_name"] for j in scrape_config({"triton": ["a:1"], "gateway": []})["scrape_configs"]}


def test_unknown_job_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scrape jobs"):
        scrape_config({"tritonn": ["127.0.0.1:1"]})


@needs_promtool
def test_generated_config_passes_promtool(tmp_path: Path) -> None:
    result = check_config(write_config(tmp_path / "prometheus.yml", TARGETS, interval_s=1.0))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text('{"global": {"scrape_interval": "1s", "scrape_timeout": "5s"}}')  # timeout > interval
    assert check_config(path).returncode != 0


@needs_prometheus
def test_real_prometheus_scrapes_an_exporter_and_answers_promql() -> None:
    registry = CollectorRegistry()
    counter = Counter("tritonzoo_test_requests", "test", ["name"], registry=registry)
    counter.labels("a").inc(3)
    exporter_port, prom_port = free_ports(2)
    server, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer({"locust": [f"127.0.0.1:{exporter_port}"]}, prom_port, interval_s=0.2) as prom:
            workdir = prom.workdir
            assert workdir is not None, "a running server has its storage"
            prom.client.wait_for_targets({"locust"})
            value = _poll(lambda: prom.client.scalar('sum(tritonzoo_test_requests_total{job="locust"})'))
            assert value == 3.0
            assert prom.client.by_label("tritonzoo_test_requests_total", "name") == {"a": 3.0}
            now = time.time()
            series = prom.client.query_range("tritonzoo_test_requests_total", now - 2, now, 0.5)
            assert series and all(float(v) == 3.0 for _, v in series[0]["values"])
            with pytest.raises(PrometheusError, match="bad_data"):
                prom.client.query("sum(")
        assert prom.process is None and not workdir.exists()  # stopped and its storage removed
        assert not PromClient(f"http://127.0.0.1:{prom_port}").ready()
    finally:
        server.shutdown()


def _poll(read, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = read()
        if value is not None:
            return value
        time.sleep(0.1)
    return None
