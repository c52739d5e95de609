"""Gateway settings: loopback by default; keys come from the environment, never from code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_KEY_ENV = "TRITONZOO_ADMIN_KEY"
API_KEY_ENV = "TRITONZOO_API_KEY"


def _keys(env: str) -> frozenset[str]:
    return frozenset(k.strip() for k in os.environ.get(env, "").split(",") if k.strip())


@dataclass(frozen=True)
class GatewaySettings:
    repository: Path
    triton_grpc: str = "127.0.0.1:8001"
    triton_http: str = "127.0.0.1:8000"
    state_file: Path = Path("runs/gateway/experiments.json")  # the experiments file every replica watches
    read_only_experiments: bool = False  # a file this gateway only reads (a ConfigMap): the admin API cannot write it
    watch_interval_s: float = 1.0  # how often the experiments file is read again
    # Canary rollbacks read every replica's error rate here; empty: each replica judges from its own requests.
    prometheus_url: str = ""
    health_interval_s: float = 0.5  # several Triton replicas: how often each one's readiness is asked
    prometheus_settle_s: float = 5.0  # after a step's end, before asking Prometheus: every replica's last scrape
    admin_keys: frozenset[str] = field(default_factory=lambda: _keys(ADMIN_KEY_ENV))
    api_keys: frozenset[str] = field(default_factory=lambda: _keys(API_KEY_ENV))  # empty: inference is open
    max_body_bytes: int = 4 * 1024 * 1024
    # An oversized body is read and discarded up to this many bytes before the 413, so that clients which send
    # their whole body before reading (Python's urllib) read the answer instead of a reset connection.
    max_drain_bytes: int = 256 * 1024 * 1024
    default_top_k: int = 5
    retry_after_s: int = 2
    shadow_max_in_flight: int = 16
