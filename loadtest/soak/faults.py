"""The faults themselves, run by one thread at their scheduled seconds. Each returns what happened and when, in
wall-clock seconds, for the report to line requests up against."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import urllib3

from loadtest.soak.client import PNG, Record, sample_png, send
from loadtest.soak.schedule import Fault, Schedule
from loadtest.soak.stack import ADMIN_KEY, EXPERIMENT, SoakStack
from serving.manifest import read_manifest
from serving.publication import Publication

# (what, content type, body): each is refused by the gateway with a 400 before it reaches Triton.
MALFORMED = (
    ("bad-png", PNG["Content-Type"], b"\x89PNG\r\n\x1a\n not really a png"),
    ("short-tensor", "application/octet-stream", b"\0" * 10),
    ("bad-kserve-json", "application/json", b'{"inputs": [{"name": "images", "shape": [1, -3]}]}'),
)


def triton_kill(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    replica = int(fault.params.get("replica", 0)) % len(stack.tritons)
    killed, pid = stack.kill_triton(replica)
    back = stack.wait_triton_back(replica, pid)
    instance = f"127.0.0.1:{stack.tritons[replica].server.cfg.metrics_port}"  # its label in Prometheus
    return {"replica": replica, "instance": instance, "killed_at": killed, "back_at": back, "down_s": back - killed}


def gateway_kill(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    killed = stack.kill_gateway()
    back = stack.start_gateway()  # a process manager's restart (systemd Restart=always, a pod's restartPolicy)
    return {"killed_at": killed, "back_at": back, "down_s": back - killed}


def malformed_burst(stack: SoakStack, fault: Fault, records: list[Record]) -> dict:
    """Sent as fast as one connection allows, mixed into the paced traffic; kept apart from its counts."""
    count = int(fault.params.get("count", 60))
    pool = urllib3.PoolManager(maxsize=1)
    model = next(iter(json.loads(stack.good_experiments)[EXPERIMENT]["arms"]))
    url = f"{stack.url}/v1/models/{model}/predict"
    sent = [send(pool, url, body, {"Content-Type": ctype}, f"malformed:{what}")
            for i in range(count) for what, ctype, body in [MALFORMED[i % len(MALFORMED)]]]
    pool.clear()
    records.extend(sent)
    codes: dict[str, int] = {}
    for r in sent:
        codes[str(r.status)] = codes.get(str(r.status), 0) + 1
    return {"sent": count, "codes": codes, "all_400": codes == {"400": count}}


def bad_experiments_file(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    """A careless operator's edit: the file overwritten in place with invalid JSON, then put right."""
    hold_s = float(fault.params.get("hold_s", 10))
    good = stack.state_file.read_bytes()  # what the gateway runs now (the admin API may have added experiments)
    errors_before = reload_errors(stack)
    stack.state_file.write_text('{"soak": {"arms": ')  # truncated: not JSON
    written = time.time()
    seen = []
    while time.time() < written + hold_s:  # what the gateway says it runs while the file is bad
        time.sleep(1.0)
        seen.append(experiment_arms(stack))
    errors_after = reload_errors(stack)
    stack.state_file.write_bytes(good)
    expected = json.loads(good)[EXPERIMENT]["arms"]
    held = bool(seen) and all(s == expected for s in seen)
    return {"written_at": written, "restored_at": time.time(), "arms_seen": seen[-1] if seen else None,
            "last_good_held": held, "gateway_saw_bad_file": errors_after > errors_before}


def reload_errors(stack: SoakStack) -> int:
    """How many bad files the gateway has refused (-1: it did not say)."""
    try:
        return int(httpx.get(f"{stack.url}/v1/experiments", timeout=5).json()["source"]["reload_errors"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def experiment_arms(stack: SoakStack) -> dict | None:
    try:
        return httpx.get(f"{stack.url}/v1/experiments/{EXPERIMENT}", timeout=5).json().get("arms")
    except (httpx.HTTPError, ValueError):
        return None


def canary(stack: SoakStack, fault: Fault, records: list[Record]) -> dict:
    """On an experiment of its own ('rollout', the baseline arm alone), with traffic of its own from this thread:
    a canary to the other arm ramped and promoted on its schedule, then a canary back, rolled back by the admin
    API halfway. Kept off the A/B experiment, whose stickiness the soak checks."""
    baseline, candidate = list(json.loads(stack.good_experiments)[EXPERIMENT]["arms"])[:2]
    steps, interval_s = [0.5, 1.0], float(fault.params.get("interval_s", 3))
    admin = httpx.Client(base_url=stack.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30)
    traffic = Traffic(stack, ROLLOUT, records)
    try:
        admin.put(f"/admin/experiments/{ROLLOUT}", json={"arms": {baseline: 1}}).raise_for_status()
        started = time.time()
        admin.post(f"/admin/experiments/{ROLLOUT}/canary", json={"model": candidate, "steps": steps,
                                                                  "interval_s": interval_s}).raise_for_status()
        promoted = wait_state(stack, traffic, ROLLOUT, "promoted", started + interval_s * (len(steps) + 2))
        admin.post(f"/admin/experiments/{ROLLOUT}/canary", json={"model": baseline, "steps": steps,
                                                                  "interval_s": 60}).raise_for_status()
        traffic.run_for(interval_s)
        rolled = admin.post(f"/admin/experiments/{ROLLOUT}/canary/rollback").json()
        traffic.run_for(interval_s)
    finally:
        admin.close()
    return {"candidate": candidate, "promoted_after_s": promoted - started if promoted else None,
            "rolled_back_to": rolled.get("arms"), "requests": traffic.sent, "failed": traffic.failed}


ROLLOUT = "rollout"
BAD_ROLLOUT = "rollout-bad"


def canary_error_rollback(stack: SoakStack, fault: Fault, records: list[Record]) -> dict:
    """A candidate that fails, rolled back by the canary's error rule: a copy of the baseline published under a
    name of its own, its canary started, then the candidate unloaded from every Triton behind the gateway's back,
    so that every request routed to it gets a 503 (Triton: unknown model). After the first step its error rate
    rolls it back; the clients' retries (the 503 carries Retry-After) are answered by the baseline by then."""
    baseline = list(json.loads(stack.good_experiments)[EXPERIMENT]["arms"])[0]
    candidate = publish_copy(stack, baseline, f"{baseline}_bad")
    interval_s = float(fault.params.get("interval_s", 3))
    admin = httpx.Client(base_url=stack.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60)
    traffic = Traffic(stack, BAD_ROLLOUT, records)
    try:
        admin.put(f"/admin/experiments/{BAD_ROLLOUT}", json={"arms": {baseline: 1}}).raise_for_status()
        started = time.time()
        admin.post(f"/admin/experiments/{BAD_ROLLOUT}/canary", json={
            "model": candidate, "steps": [0.5, 1.0], "interval_s": interval_s, "max_error_rate": 0.1,
        }).raise_for_status()
        for t in stack.tritons:  # behind the gateway's back: it still routes to the candidate
            httpx.post(f"http://{t.server.cfg.http_url}/v2/repository/models/{candidate}/unload", timeout=60)
        rolled = wait_state(stack, traffic, BAD_ROLLOUT, "rolled_back", started + interval_s * 4 + 10)
        traffic.run_for(interval_s)
        canary = admin.get(f"/v1/experiments/{BAD_ROLLOUT}").json().get("canary") or {}
    finally:
        admin.close()
    return {"candidate": candidate, "rolled_back_after_s": rolled - started if rolled else None,
            "reason": canary.get("reason", ""), "requests": traffic.sent, "failed": traffic.failed}


def publish_copy(stack: SoakStack, model: str, name: str) -> str:
    """`model` published again as `name` (real copies: its config is rewritten with the new name)."""
    with Publication(stack.repo) as publication:
        folder = publication.stage(name)
        shutil.copytree(stack.repo / model, folder, dirs_exist_ok=True)
        config = folder / "config.pbtxt"
        config.write_text(config.read_text().replace(f'name: "{model}"', f'name: "{name}"', 1))
        publication.record(name, read_manifest(stack.repo).models[model].to_dict())
    return name


class Traffic:
    """Paced requests (10/s, sticky keys) to one experiment from the fault thread, recorded as kind 'canary'."""

    def __init__(self, stack: SoakStack, experiment: str, records: list[Record], rate: float = 10.0) -> None:
        self.url, self.records, self.period = f"{stack.url}/v1/experiments/{experiment}/predict", records, 1 / rate
        self.pool, self.body = urllib3.PoolManager(maxsize=1), sample_png()
        self.sent = self.failed = 0

    def one(self) -> None:
        r = send(self.pool, self.url, self.body, {**PNG, "X-Assignment-Key": f"c{self.sent % 16}"}, "canary")
        self.records.append(r)
        self.sent, self.failed = self.sent + 1, self.failed + (r.status != 200)
        time.sleep(self.period)

    def run_for(self, seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            self.one()


def wait_state(stack: SoakStack, traffic: Traffic, experiment: str, state: str, deadline: float) -> float | None:
    """When the canary reached `state` (wall clock), sending the experiment's traffic meanwhile; None: never."""
    while time.time() < deadline:
        traffic.one()
        try:
            canary = httpx.get(f"{stack.url}/v1/experiments/{experiment}", timeout=5).json().get("canary") or {}
        except (httpx.HTTPError, ValueError):
            continue
        if canary.get("state") == state:
            return time.time()
    return None


def publish_version(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    """A new version of one arm's model, published as a build publishes (staged beside the repository, swapped
    in by one rename with the manifest), then loaded on every replica through the gateway's admin API, as an
    operator would: Triton loads the new version and retires the old one once its requests are done."""
    model = list(json.loads(stack.good_experiments)[EXPERIMENT]["arms"])[int(fault.params.get("arm", 0))]
    version = next_version(stack.repo / model)
    with Publication(stack.repo) as publication:
        folder = publication.restage(model)
        shutil.copytree(folder / str(version - 1), folder / str(version), copy_function=os.link)
        publication.record(model, read_manifest(stack.repo).models[model].to_dict())
    published = time.time()
    r = httpx.post(f"{stack.url}/admin/models/{model}/load", headers={"X-API-Key": ADMIN_KEY}, timeout=180)
    r.raise_for_status()
    ready = [httpx.get(f"http://{t.server.cfg.http_url}/v2/models/{model}/versions/{version}/ready",
                       timeout=5).status_code == 200 for t in stack.tritons]
    return {"model": model, "version": version, "published_at": published, "loaded_at": time.time(),
            "ready_on_every_replica": all(ready)}


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions) + 1


ACTIONS: dict[str, Callable[[SoakStack, Fault, list[Record]], dict]] = {
    "triton_kill": triton_kill, "gateway_kill": gateway_kill, "malformed_burst": malformed_burst,
    "bad_experiments_file": bad_experiments_file, "canary": canary, "publish_version": publish_version,
    "canary_error_rollback": canary_error_rollback,
}


class FaultRunner:
    """One thread: it waits for the load's time zero, then runs each fault at t0 + at_s, one after another (a fault
    still running delays the next). `stop` (Ctrl-C) starts no further fault."""

    def __init__(self, stack: SoakStack, schedule: Schedule) -> None:
        self.stack, self.schedule = stack, schedule
        self.done: list[dict] = []
        self.side_records: list[Record] = []  # the malformed requests and the canaries' own traffic
        self.current: Fault | None = None     # the fault running now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, begun: Callable[[], float | None]) -> None:
        """`begun`: the load's time zero once it has begun, else None (asked every 0.1 s)."""
        self._thread = threading.Thread(target=self._run, args=(begun,), name="soak-faults", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """No fault starts after this; one running is given `timeout_s` to end (a restart it waits on may not)."""
        self._stop.set()
        self.join(timeout_s)

    def not_run(self) -> list[dict]:
        """The schedule's faults that did not finish: the one cut short (marked), then those never begun."""
        left = self.schedule.faults[len(self.done):]
        return [{**f.to_json(), "cut_short": f is self.current} for f in left]

    def _run(self, begun: Callable[[], float | None]) -> None:
        t0 = None
        while t0 is None:
            if self._stop.wait(0.1):
                return
            t0 = begun()
        for fault in self.schedule.faults:
            if self._stop.wait(max(0.0, t0 + fault.at_s - time.time())):
                return
            self.current, started = fault, time.time()
            try:
                outcome = ACTIONS[fault.kind](self.stack, fault, self.side_records)
                error = ""
            except Exception as exc:  # the run goes on; the report shows the fault as failed
                outcome, error = {}, f"{type(exc).__name__}: {exc}"
            self.done.append({**fault.to_json(), "started": started, "ended": time.time(), "error": error,
                              **outcome})
            self.current = None
