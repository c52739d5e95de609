"""Starts Triton (or the gateway stack) and a Prometheus scraping it on loopback, and stops them on the way out."""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from loadtest.metrics.prometheus import PromClient, PrometheusServer, binary
from loadtest.runs.spec import ROOT, LoadSpec


@dataclass(frozen=True)
class Endpoints:
    triton_http: str
    triton_grpc: str
    triton_metrics: str
    gateway: str | None = None


@contextmanager
def serve(spec: LoadSpec, admin_key: str) -> Iterator[Endpoints]:
    """Triton with only the chosen models loaded, or the whole stack (gateway + Triton) for gateway targets."""
    from serving.triton import TritonConfig, TritonServer, free_ports

    if spec.target in ("gateway", "experiment"):
        from serving.stack import StackProcess

        port, http, grpc, metrics = free_ports(4)
        command = [sys.executable, "-m", "serving.stack", "--repo", str(spec.repo), "--port", str(port),
                   "--triton-ports", f"{http},{grpc},{metrics}", "--state-file", str(spec.out / "gateway-state.json")]
        env = {**os.environ, "TRITONZOO_ADMIN_KEY": admin_key}
        with StackProcess(command, f"http://127.0.0.1:{port}", env, ROOT):
            yield Endpoints(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"127.0.0.1:{metrics}", f"127.0.0.1:{port}")
        return
    cfg = TritonConfig.loading(spec.repo, spec.models)
    with TritonServer(cfg, spec.out / "tritonserver.log"):
        yield Endpoints(cfg.http_url, cfg.grpc_url, f"{cfg.host}:{cfg.metrics_port}")


def create_experiment(gateway: str, name: str, models: tuple[str, ...], admin_key: str) -> None:
    """Equal weights across the models, through the gateway's admin API."""
    body = json.dumps({"arms": {m: 1.0 for m in models}}).encode()
    req = urllib.request.Request(f"http://{gateway}/admin/experiments/{name}", data=body, method="PUT",
                                 headers={"Content-Type": "application/json", "X-API-Key": admin_key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


@dataclass(frozen=True)
class Stack:
    """What a run loads and reads back from: the servers, a Prometheus scraping them, the exporter ports it scrapes."""

    ends: Endpoints
    prometheus: PromClient
    exporter_ports: list[int]


@contextmanager
def load_stack(spec: LoadSpec) -> Iterator[Stack]:
    """Triton (or the gateway stack, with the experiment created) and Prometheus, stopped on the way out."""
    from serving.triton import free_ports

    admin_key = secrets.token_hex(16)
    binary("prometheus")  # before any server starts: a missing Prometheus is one line, not a torn-down stack
    prom_port, *exporter_ports = free_ports(1 + spec.processes)
    spec.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ends = stack.enter_context(serve(spec, admin_key))
        targets = {"triton": [ends.triton_metrics], "gateway": [ends.gateway] if ends.gateway else [],
                   "locust": [f"127.0.0.1:{p}" for p in exporter_ports]}
        prom = stack.enter_context(PrometheusServer(targets, prom_port, spec.interval_s, spec.out / "prometheus.log"))
        prom.client.wait_for_targets({"triton", "gateway"})
        if spec.target == "experiment" and ends.gateway is not None:  # serve() starts a gateway for experiments
            create_experiment(ends.gateway, spec.experiment, spec.models, admin_key)
        yield Stack(ends, prom.client, exporter_ports)
