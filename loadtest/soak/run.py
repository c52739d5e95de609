"""`invoke soak`: start the stack, warm it up, run the paced clients and the fault schedule, collect, report."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import httpx

from loadtest.metrics.prometheus import binary
from loadtest.soak.analyze import goals, growth, summarize
from loadtest.soak.client import Clients, Record, send
from loadtest.soak.counts import compare
from loadtest.soak.faults import FaultRunner
from loadtest.soak.schedule import Schedule
from loadtest.soak.stack import EXPERIMENT, SoakStack, process_usage
from serving.manifest import load_manifest

WARMUP_REQUESTS = 40


def pick_arms(repo: Path, models: list[str]) -> dict[str, float]:
    """The A/B experiment's two arms at equal weight: the models given, or the repository's first two."""
    served = list(load_manifest(repo))
    chosen = models or served[:2]
    unknown = [m for m in chosen if m not in served]
    if unknown or not chosen:
        raise SystemExit(f"error: models {unknown or chosen} not in {repo}; served: {served}")
    return {m: 1.0 for m in chosen}


def run_soak(repo: Path, models: list[str], schedule: Schedule, out: Path, replicas: int = 2) -> dict:
    """The whole soak; Ctrl-C or an error stops every process it started (SoakStack's exit)."""
    binary("prometheus")  # a missing tool is a one-line error before anything starts
    arms = pick_arms(repo, models)
    out.mkdir(parents=True, exist_ok=True)
    served = private_copy(repo, out / "stack" / "repo")
    with SoakStack(served, out / "stack", arms, replicas) as stack:
        warm_up(stack)
        time.sleep(3 * stack.scrape_s)  # Prometheus's last sample before t0 holds every warm-up request
        usage_start = {role: process_usage(pid) for role, pid in stack.processes().items()}
        clients, faults = Clients(stack.url, EXPERIMENT, schedule.rate, schedule.users), FaultRunner(stack, schedule)
        t0 = time.time()
        clients.start(t0, schedule.duration_s)
        faults.start(t0)
        clients.join(schedule.duration_s + 120)
        faults.join(max(10.0, t0 + schedule.duration_s + 300 - time.time()))
        end = time.time()
        healthy = healthy_at_end(stack)
        usage_end = {role: process_usage(pid) for role, pid in stack.processes().items()}
        time.sleep(3 * stack.scrape_s)  # the last scrape after the last request
        records = clients.records + faults.side_records
        results = collect(stack, schedule, records, faults.done, t0, end, healthy, usage_start, usage_end)
    results["run"] = {"repo": str(repo), "arms": list(arms), "replicas": replicas,
                      "cpu": cpu_name(), "python": platform.python_version(), "t0": t0, "end": end}
    write_records(out / "requests.csv", records)
    (out / "soak.json").write_text(json.dumps(results, indent=1))
    return results


def private_copy(repo: Path, dest: Path) -> Path:
    """The repository as the soak serves it: hard links, so it costs no space, and the publish fault's new
    version lands in the copy, never in the user's repository (publication replaces files, never writes
    through them)."""
    import os
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system
            shutil.copy2(src, dst)

    shutil.copytree(repo, dest, copy_function=link)
    return dest


def warm_up(stack: SoakStack) -> None:
    """Every arm on every replica has run before the clock starts: the first inferences are slow."""
    import urllib3

    pool = urllib3.PoolManager(maxsize=1)
    clients = Clients(stack.url, EXPERIMENT, 1.0, 1)
    for i in range(WARMUP_REQUESTS):
        r = send(pool, clients.url, clients.body, {"Content-Type": "image/png", "X-Assignment-Key": f"w{i}"}, "warm")
        if r.status != 200:
            raise RuntimeError(f"warm-up request failed: {r.error}; see {stack.workdir}")


def healthy_at_end(stack: SoakStack) -> bool:
    urls = [f"{stack.url}/readyz"] + [f"http://{t.server.cfg.http_url}/v2/health/ready" for t in stack.tritons]
    try:
        return all(httpx.get(u, timeout=5).status_code == 200 for u in urls)
    except httpx.HTTPError:
        return False


def collect(stack: SoakStack, schedule: Schedule, records: list[Record], faults: list[dict], t0: float,
            end: float, healthy: bool, usage_start: dict, usage_end: dict) -> dict:
    summary = summarize(records, faults, schedule, t0)
    # Triton and the gateway count the canary's traffic too; the malformed requests are never a 200.
    answered = [r for r in records if r.status == 200 and r.kind in ("good", "canary")]
    # Asked now, not at `end`: the scrapes after the last request (taken while run_soak waited) must count.
    counts = compare(stack.prometheus.client, answered, t0, time.time(), faults)
    usage = growth(usage_start, usage_end)
    return {"schedule": schedule.to_json(), "faults": faults, "summary": summary, "counts": counts,
            "usage": usage, "healthy_at_end": healthy,
            "goals": goals(summary, counts, usage, faults, schedule, healthy),
            "restarts": {"gateway_starts": stack.gateway_starts,
                         "triton": [t.restarts for t in stack.tritons]}}


def write_records(path: Path, records: list[Record]) -> None:
    """Every request, one line each: the report's figures can be checked against them."""
    import csv

    fields = list(Record.__dataclass_fields__)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in sorted(records, key=lambda r: r.start):
            writer.writerow(r.to_json())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
