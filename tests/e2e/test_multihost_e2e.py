"""Separate hosts on this machine: network namespaces, each with its own address on one bridge, run two Triton
replicas (each pinned to a core), two gateway replicas routing across them on one shared experiments file, Locust's
master and two workers in its own distributed mode, and a Prometheus scraping every one of them by address.

Traffic goes only to loopback and to the namespaces' own addresses. The namespaces and the bridge are removed on
exit, also when a test fails (a fixture finalizer, and atexit should the process end another way).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from build.data import load_dataset
from loadtest.analysis.shapes import ConstantPlan
from loadtest.metrics.prometheus import PromClient
from loadtest.protocol.images import payloads_for, save_payloads
from loadtest.runs.plan import LoadPlan
from serving.processes import spawn, stop_group
from serving.triton import TritonConfig, command, environment, prepare_backends
from tests.conftest import CIFAR, MINI_ARCHIVE, ROOT, full_data_spec
from tests.e2e.stack import ADMIN, ADMIN_KEY, publish

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tool("prometheus", "ip", "taskset"), pytest.mark.timeout(900)]
HOSTS = ("t1", "t2", "g1", "g2", "lm", "w1", "w2", "prom")
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
GATEWAY_PORT, PROM_PORT, MASTER_PORT, EXPORTER_PORT = 8080, 9090, 5557, 9647
TENSOR = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": "1,3,32,32"}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


class Hosts:
    """Network namespaces as hosts: a veth pair each, one end in the namespace with its address, the other on a
    bridge in this namespace, which has the bridge's first address and so reaches every host."""

    def __init__(self, names: tuple[str, ...], workdir: Path) -> None:
        tag = os.getpid() % 10000
        self.prefix, self.bridge = f"tz{tag}", f"tz{tag}br"
        self.subnet = f"10.{200 + tag % 50}.{tag % 250}"  # our own namespaces' addresses only
        self.address = {name: f"{self.subnet}.{i + 2}" for i, name in enumerate(names)}
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def create(self) -> Hosts:
        atexit.register(self.remove)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, (name, address) in enumerate(self.address.items()):
            ns, outside, inside = self.ns(name), f"{self.prefix}v{i}", f"{self.prefix}p{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            sh("ip", "-n", ns, "link", "set", inside, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def run(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = spawn(["ip", "netns", "exec", self.ns(name), *argv], self.workdir / f"{name}.log", env=env, cwd=ROOT)
        self.processes.append(proc)
        return proc

    def log(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def remove(self) -> None:
        for proc in reversed(self.processes):
            stop_group(proc, grace=5)
        self.processes.clear()
        for name in self.address:
            ns = self.ns(name)
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:  # anything left in the namespace was started by this test
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", ns, check=False)  # takes its veth pair with it
        sh("ip", "link", "del", self.bridge, check=False)


def can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"tzprobe{os.getpid() % 10000}"
    made = sh("ip", "netns", "add", name, check=False)
    sh("ip", "netns", "del", name, check=False)
    return None if made.returncode == 0 else f"`ip netns add` failed: {made.stderr.strip()}"


def wait_http(url: str, timeout_s: float, what: str, logs) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} not ready at {url} after {timeout_s:.0f}s:\n{logs()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = can_make_namespaces()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("multihost")
    data = load_dataset(full_data_spec() or str(MINI_ARCHIVE), CIFAR, root / "cache")
    repo = root / "repo"
    models = [publish(data, repo, "tiny", root), publish(data, repo, "tiny_b", root)]
    hosts = Hosts(HOSTS, root / "logs")
    try:
        hosts.create()
        start_tritons(hosts, repo)
        experiments = root / "experiments.json"
        start_gateways(hosts, repo, experiments)
        start_prometheus(hosts, root)
        payloads = save_payloads(payloads_for(repo, models, Path(full_data_spec() or MINI_ARCHIVE), 64),
                                 root / "payloads.npz")
        yield hosts, repo, models, payloads, root
    finally:
        hosts.remove()


def start_tritons(hosts: Hosts, repo: Path) -> None:
    backends = prepare_backends()
    for core, name in enumerate(("t1", "t2")):
        cfg = TritonConfig(repo, host=hosts.address[name], http_port=TRITON_PORTS["http"],
                           grpc_port=TRITON_PORTS["grpc"], metrics_port=TRITON_PORTS["metrics"],
                           model_control="explicit", extra_args=("--load-model=*",))
        cpu = core % (os.cpu_count() or 1)
        hosts.run(name, ["taskset", "-c", str(cpu), *command(cfg, backends)], env=environment())
    for name in ("t1", "t2"):
        wait_http(f"http://{hosts.address[name]}:{TRITON_PORTS['http']}/v2/health/ready", 240, name,
                  lambda name=name: hosts.log(name))


def triton_list(hosts: Hosts, port: str) -> str:
    return ",".join(f"{hosts.address[t]}:{TRITON_PORTS[port]}" for t in ("t1", "t2"))


def start_gateways(hosts: Hosts, repo: Path, experiments: Path) -> None:
    env = {**os.environ, "TRITONZOO_ADMIN_KEY": ADMIN_KEY}
    for name in ("g1", "g2"):
        hosts.run(name, [sys.executable, "-m", "serving.gateway", "--repo", str(repo), "--host", hosts.address[name],
                         "--port", str(GATEWAY_PORT), "--triton-grpc", triton_list(hosts, "grpc"),
                         "--triton-http", triton_list(hosts, "http"), "--experiments", str(experiments),
                         "--watch-interval-s", "0.5", "--prometheus-url",
                         f"http://{hosts.address['prom']}:{PROM_PORT}", "--prometheus-settle-s", "3"], env=env)
    for name in ("g1", "g2"):
        wait_http(f"http://{hosts.address[name]}:{GATEWAY_PORT}/readyz", 120, name, lambda name=name: hosts.log(name))


def start_prometheus(hosts: Hosts, root: Path) -> None:
    targets = {"triton": [f"{hosts.address[t]}:{TRITON_PORTS['metrics']}" for t in ("t1", "t2")],
               "gateway": [f"{hosts.address[g]}:{GATEWAY_PORT}" for g in ("g1", "g2")],
               "locust": [f"{hosts.address[w]}:{EXPORTER_PORT}" for w in ("w1", "w2")]}
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t}]} for job, t in targets.items()]}
    path = root / "prometheus.json"
    path.write_text(json.dumps(config))
    storage = root / "tsdb"
    shutil.rmtree(storage, ignore_errors=True)
    prometheus = shutil.which("prometheus")
    assert prometheus is not None, "the module's needs_tool mark ensures it"
    hosts.run("prom", [prometheus, f"--config.file={path}", f"--storage.tsdb.path={storage}",
                       f"--web.listen-address={hosts.address['prom']}:{PROM_PORT}", "--log.level=warn"])
    wait_http(f"http://{hosts.address['prom']}:{PROM_PORT}/-/ready", 60, "prometheus", lambda: hosts.log("prom"))


def gateway(hosts: Hosts, name: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://{hosts.address[name]}:{GATEWAY_PORT}", timeout=30)


def test_replicas_agree_on_arms_and_canary_weights(cluster) -> None:
    hosts, _, (first, candidate), payloads, _ = cluster
    body = payloads_body(payloads, first)
    with gateway(hosts, "g1") as g1, gateway(hosts, "g2") as g2:
        r = g1.put("/admin/experiments/ab", json={"arms": {first: 1}}, headers=ADMIN)
        assert r.status_code in (200, 201), r.text
        start, interval = time.time() + 4, 6.0
        r = g1.post("/admin/experiments/ab/canary", headers=ADMIN,
                    json={"model": candidate, "start": start, "steps": [0.5, 1.0], "interval_s": interval})
        assert r.status_code == 202, r.text
        wait_until(lambda: g2.get("/v1/experiments").json()["source"]["sha256"] ==
                   g1.get("/v1/experiments").json()["source"]["sha256"], 10, "g2 reloads the file g1 wrote")
        seen = {}
        for phase, at, weight in (("pending", start - 2, 0.0), ("ramping", start + interval / 2, 0.5),
                                  ("ramping", start + 1.5 * interval, 1.0)):
            time.sleep(max(0.0, at - time.time()))
            for name, client in (("g1", g1), ("g2", g2)):
                canary = client.get("/v1/experiments/ab").json()["canary"]
                assert (canary["state"], canary["weight"]) == (phase, weight), (name, canary)
            if weight == 0.5:  # the same key gets the same arm from either replica
                for i in range(60):
                    headers = {**TENSOR, "X-Assignment-Key": f"user-{i}"}
                    arms = {c.post("/v1/experiments/ab/predict", content=body, headers=headers)
                            .headers["X-Experiment-Arm"] for c in (g1, g2)}
                    assert len(arms) == 1, (i, arms)
                    seen.update(dict.fromkeys(arms, True))
        assert set(seen) == {first, candidate}
        # Both judge the last step from Prometheus, as of its end: both promote.
        for client in (g1, g2):
            wait_until(lambda client=client: client.get("/v1/experiments/ab").json()["canary"]["state"] == "promoted",
                       30, "promotion")
            assert client.get("/v1/experiments/ab").json()["arms"] == {candidate: 1.0}


def payloads_body(payloads: Path, model: str) -> bytes:
    import numpy as np

    with np.load(payloads) as data:
        return data[model][0].tobytes()


def wait_until(predicate, timeout_s: float, what) -> None:
    """`what`: a text, or a function giving one (logs read when it fails, not before)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what() if callable(what) else what}"
        time.sleep(0.2)


# Locust's master sends its own --host to every worker, even none; a worker keeps its user class's own host then.
# So each worker's user class takes its gateway from the environment: the two workers load the two gateways.
SPREAD = """
import os
import sys

class SpreadGatewayUser(sys.modules["locustfile"].GatewayUser):
    host = os.environ.get("TZ_GATEWAY")
"""


def locust(hosts: Hosts, payloads: Path, repo: Path, models: list[str], users: int, rate: float,
           seconds: float) -> list[subprocess.Popen]:
    """Locust's master in its namespace and a worker in each of two others, each worker loading one gateway."""
    spread = hosts.workdir / "spread.py"
    spread.write_text(SPREAD)
    files = ",".join(["loadtest/locust/locustfile.py", "loadtest/locust/constant_shape.py",
                      "loadtest/deploy/locust_exporter.py", str(spread)])
    plan = LoadPlan(models=tuple(models), repo=str(repo), images_file=str(payloads), images=64, linger_s=3,
                    max_seconds=seconds + 30, constant=ConstantPlan(users, seconds, rate))
    plan_file = plan.write(hosts.workdir / "plan.json")
    common = ["-f", files, "SpreadGatewayUser", "--tz-plan", str(plan_file), "--loglevel", "WARNING"]
    master = hosts.run("lm", [sys.executable, "-m", "locust", *common, "--headless", "--master",
                              "--master-bind-host", hosts.address["lm"], "--master-bind-port", str(MASTER_PORT),
                              "--expect-workers", "2", "--stop-timeout", "10", "--only-summary"])
    workers = [hosts.run(w, [sys.executable, "-m", "locust", *common, "--worker", "--master-host",
                             hosts.address["lm"], "--master-port", str(MASTER_PORT),
                             "--tz-public-exporter", f"{hosts.address[w]}:{EXPORTER_PORT}"],
                         env={**os.environ, "TZ_GATEWAY": f"http://{hosts.address[g]}:{GATEWAY_PORT}"})
               for w, g in (("w1", "g1"), ("w2", "g2"))]
    return [master, *workers]


def test_killing_a_triton_under_load_loses_nothing_but_in_flight_requests(cluster) -> None:
    hosts, repo, (first, _), payloads, _ = cluster
    prom = PromClient(f"http://{hosts.address['prom']}:{PROM_PORT}")
    users, rate, seconds = 8, 40.0, 24.0
    processes = locust(hosts, payloads, repo, [first], users, rate, seconds)
    master = processes[0]
    wait_until(lambda: (prom.scalar('sum(tritonzoo_locust_requests_total{outcome="success"})') or 0) > 50, 60,
               lambda: f"load through both workers:\n{hosts.log('lm')}\n{hosts.log('w1')}\n{prom.targets()}")
    t1 = next(p for p in hosts.processes if p.args[3] == hosts.ns("t1"))
    killed_at = time.time()
    os.killpg(t1.pid, signal.SIGKILL)  # the server and its backend stubs, at once
    try:
        master.wait(seconds + 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Locust did not finish:\n{hosts.log('lm')}")
    time.sleep(3)  # the final scrape of the workers' exporters
    since = f"{int(time.time() - killed_at + seconds + 30)}s"  # the workers have gone: their last values

    def total(outcome: str) -> float:
        return prom.scalar(f'sum(max_over_time(tritonzoo_locust_requests_total{{outcome="{outcome}"}}[{since}]))') \
            or 0.0

    failures, successes = total("failure"), total("success")
    assert successes > rate * seconds * 0.6, (successes, hosts.log("lm"))
    assert failures <= users, f"{failures} failed: more than the {users} requests in flight at the kill"
    # The survivor carried the load after the kill: Triton t2's own count over the rest of the run.
    survivor = f'instance="{hosts.address["t2"]}:{TRITON_PORTS["metrics"]}"'
    window = f"{max(1, int(time.time() - killed_at - 2))}s"
    carried = prom.scalar(f"sum(increase(nv_inference_request_success{{{survivor}}}[{window}]))") or 0.0
    answered = prom.scalar(f'sum(increase(tritonzoo_locust_requests_total{{outcome="success"}}[{window}]))') or 0.0
    print(f"multihost: {successes:.0f} answered, {failures:.0f} failed ({users} users); after the kill the survivor "
          f"answered {carried:.0f} of {answered:.0f}")
    assert carried >= 0.9 * answered > 0, (carried, answered)
    for name in ("g1", "g2"):  # the gateways stayed up and ready on the survivor
        with gateway(hosts, name) as client:
            assert client.get("/readyz").status_code == 200
