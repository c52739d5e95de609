"""What the soak runs and breaks, all on loopback: Triton replicas each under its own supervisor, one gateway
process routing across them on an experiments file, and Prometheus scraping all of them and Locust's exporter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from loadtest.metrics.prometheus import PrometheusServer
from serving.processes import spawn, stop_group
from serving.supervisor import SupervisedTriton
from serving.triton import TritonConfig, free_ports

ADMIN_KEY = "soak-admin-key"  # the run's own gateway only; never a real deployment's key
EXPERIMENT = "soak"
SOAK_ROLE = "soak (faults, records)"  # this process: it runs the faults and keeps their traffic's records


class SoakStack:
    """Start with `with`; everything it started is stopped on exit, also on Ctrl-C or an error."""

    def __init__(self, repo: Path, workdir: Path, arms: dict[str, float], replicas: int = 2,
                 scrape_s: float = 0.5) -> None:
        self.repo, self.workdir, self.scrape_s = repo, workdir, scrape_s
        self.state_file = workdir / "experiments.json"
        self.good_experiments = json.dumps({EXPERIMENT: {"arms": arms}}, indent=2)
        self.tritons = [SupervisedTriton(TritonConfig.loading(repo)) for _ in range(replicas)]
        for i, t in enumerate(self.tritons):
            t.server.log_path = workdir / f"triton-{i}.log"
        self.port, prom_port, self.locust_port = free_ports(3)
        self.gateway: subprocess.Popen | None = None
        self.gateway_starts = 0
        # The gateway is always spawned from this one thread, which lives as long as the stack: the children's
        # parent-death signal (serving/processes.py) fires when the *thread* that forked them ends, so a gateway
        # restarted from the fault thread was killed when that thread finished its schedule.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soak-spawner")
        targets = {"triton": [f"127.0.0.1:{t.server.cfg.metrics_port}" for t in self.tritons],
                   "gateway": [f"127.0.0.1:{self.port}"], "locust": [f"127.0.0.1:{self.locust_port}"]}
        self.prometheus = PrometheusServer(targets, prom_port, scrape_s, workdir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SoakStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(self.good_experiments)
        try:
            for t in self.tritons:
                t.__enter__()
            self.start_gateway()
            self.prometheus.start()
            self.prometheus.client.wait_for_targets({"triton", "gateway"})
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop_group(self.gateway, grace=10)
        self.gateway = None
        self._spawner.shutdown(wait=False)
        self.prometheus.stop()
        for t in self.tritons:
            t.__exit__()

    def gateway_command(self) -> list[str]:
        grpc = ",".join(t.server.cfg.grpc_url for t in self.tritons)
        http = ",".join(t.server.cfg.http_url for t in self.tritons)
        return [sys.executable, "-m", "serving.gateway", "--repo", str(self.repo), "--host", "127.0.0.1",
                "--port", str(self.port), "--triton-grpc", grpc, "--triton-http", http,
                "--experiments", str(self.state_file), "--watch-interval-s", "0.5"]

    def start_gateway(self, timeout_s: float = 60.0) -> float:
        """Start the gateway (again) and wait until it is ready; returns when it became ready (wall clock)."""
        env = {**os.environ, "TRITONZOO_ADMIN_KEY": ADMIN_KEY}
        self.gateway = self._spawner.submit(spawn, self.gateway_command(), self.workdir / "gateway.log", env).result()
        self.gateway_starts += 1
        return wait_ready(f"{self.url}/readyz", timeout_s, self.gateway)

    def kill_gateway(self) -> float:
        """SIGKILL, as the kernel's OOM killer or a lost node would: no graceful drain."""
        assert self.gateway is not None
        killed = time.time()
        os.killpg(self.gateway.pid, signal.SIGKILL)
        self.gateway.wait()
        return killed

    def kill_triton(self, replica: int) -> tuple[float, int]:
        """SIGKILL the replica's whole group (server and Python backend stubs); its supervisor restarts it."""
        process = self.tritons[replica].server.process
        assert process is not None, f"Triton replica {replica} is not running"
        killed = time.time()
        os.killpg(process.pid, signal.SIGKILL)
        return killed, process.pid

    def wait_triton_back(self, replica: int, old_pid: int, timeout_s: float = 300.0) -> float:
        """When the supervisor's new server for the replica answered ready (wall clock)."""
        supervised = self.tritons[replica]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = supervised.server.process
            if process is not None and process.pid != old_pid and process.poll() is None:
                return wait_ready(f"http://{supervised.server.cfg.http_url}/v2/health/ready", timeout_s, process)
            time.sleep(0.1)
        raise TimeoutError(f"Triton replica {replica} was not restarted in {timeout_s:.0f}s")

    def processes(self) -> dict[str, int]:
        """Every long-lived process of the stack by role, for RSS and descriptor figures. Also asked from the
        sampling thread while a fault restarts a process: each process is read once, never checked then read again."""
        running = {"gateway": self.gateway, "prometheus": self.prometheus.process,
                   **{f"triton-{i}": t.server.process for i, t in enumerate(self.tritons)}}
        return {SOAK_ROLE: os.getpid(), **{role: p.pid for role, p in running.items() if p is not None}}


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: its process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.time()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s")

