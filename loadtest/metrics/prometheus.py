"""A real Prometheus server for a load run: generated scrape configuration, start/stop, PromQL over its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving.processes import log_tail, spawn, stop_group

JOBS = ("triton", "gateway", "locust")  # job names the queries below select on


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or refused a query."""


def scrape_config(targets: dict[str, list[str]], interval_s: float = 1.0) -> dict:
    """Scrape configuration: one job per entry of `targets` (job -> ["host:port", ...]), all on /metrics."""
    unknown = set(targets) - set(JOBS)
    if unknown:
        raise ValueError(f"unknown scrape jobs {sorted(unknown)}; known: {JOBS}")
    interval = f"{int(interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": hosts}]}
                           for job, hosts in targets.items() if hosts],
    }


def write_config(path: Path, targets: dict[str, list[str]], interval_s: float = 1.0) -> Path:
    """Write the configuration as JSON, which is valid YAML: no YAML library needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scrape_config(targets, interval_s), indent=2))
    return path


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PrometheusError(f"`{name}` not found: run ./setup.sh (it installs Debian's prometheus package)")
    return found


def check_config(path: Path) -> subprocess.CompletedProcess:
    """`promtool check config`: the configuration as Prometheus itself will read it."""
    return subprocess.run([binary("promtool"), "check", "config", str(path)], capture_output=True, text=True)


class PromClient:
    """Prometheus's HTTP API: instant and range queries, targets."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _get(self, path: str, **params: object) -> dict:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout_s) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422 carry Prometheus's reason in the body
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self._get("/api/v1/query", query=expr, time=at)["result"]

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        """The value of a one-element result (aggregate first); None when the result is empty."""
        result = self.query(expr, at)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{expr} returned {len(result)} series; aggregate it to one")
        return float(result[0]["value"][1])

    def by_label(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict]:
        """Range matrix: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step_s)["result"]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_for_targets(self, jobs: set[str], timeout_s: float = 30.0) -> None:
        """Until every target of `jobs` has been scraped successfully once."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [t["health"] for t in self.targets() if t["labels"].get("job") in jobs]
            if states and all(s == "up" for s in states):
                return
            time.sleep(0.2)
        down = [(t["scrapeUrl"], t["lastError"]) for t in self.targets() if t["health"] != "up"]
        raise PrometheusError(f"targets not up after {timeout_s:.0f}s: {down}")


@dataclass
class PrometheusServer:
    """One `prometheus` process on loopback with its own temporary storage, removed on stop."""

    targets: dict[str, list[str]]
    port: int
    interval_s: float = 1.0
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> PromClient:
        return PromClient(self.url)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self, config: Path, storage: Path) -> list[str]:
        return [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
                "--log.level=warn"]

    def start(self, timeout_s: float = 30.0) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tritonzoo-prometheus-"))
        config = write_config(self.workdir / "prometheus.yml", self.targets, self.interval_s)
        log_path = self.log_path = self.log_path or self.workdir / "prometheus.log"  # its tail goes into any error
        try:
            process = self.process = spawn(self.command(config, self.workdir / "data"), log_path)
            self._wait_ready(process, log_path, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {process.returncode}:\n{log_tail(log_path)}")
            if self.client.ready():
                return
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {timeout_s:.0f}s:\n{log_tail(log_path)}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        stop_group(proc)
        workdir, self.workdir = self.workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
