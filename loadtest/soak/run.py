"""`invoke soak`: start the stack, warm it up, run the paced clients and the fault schedule, collect, report."""

from __future__ import annotations

import json
import platform
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from loadtest.metrics.prometheus import binary
from loadtest.runs.drive import drive_locust
from loadtest.soak.analyze import KILLS, fault_of, goals, growth, summarize
from loadtest.soak.client import PNG, Record, retry_policy, sample_png, send
from loadtest.soak.counts import compare
from loadtest.soak.faults import FaultRunner
from loadtest.soak.load import LocustLoad, soak_plan
from loadtest.soak.resources import ResourceSampler, since, snapshot
from loadtest.soak.schedule import Schedule
from loadtest.soak.stack import EXPERIMENT, SoakStack
from serving.manifest import load_manifest
from serving.processes import log_tail
from serving.provenance import provenance

WARMUP_REQUESTS = 40


def pick_arms(repo: Path, models: list[str]) -> dict[str, float]:
    """The A/B experiment's two arms at equal weight: the models given, or the repository's first two."""
    served = list(load_manifest(repo))
    chosen = models or served[:2]
    unknown = [m for m in chosen if m not in served]
    if unknown or not chosen:
        raise SystemExit(f"error: models {unknown or chosen} not in {repo}; served: {served}")
    return {m: 1.0 for m in chosen}


def run_soak(repo: Path, models: list[str], schedule: Schedule, out: Path, replicas: int = 2,
             rate_source: str = "") -> dict:
    """The whole soak. Ctrl-C or SIGTERM during the load stops Locust and the faults, and the results are those of
    the time reached, marked interrupted; every process it started is stopped on the way out (SoakStack's exit,
    drive_locust's), also on an error or a second Ctrl-C."""
    binary("prometheus")  # a missing tool is a one-line error before anything starts
    stamp = provenance("soak")  # the code that runs: taken now, so that a commit during the hour cannot change it
    arms = pick_arms(repo, models)
    out.mkdir(parents=True, exist_ok=True)
    served = private_copy(repo, out / "stack" / "repo")
    with sigterm_as_interrupt(), SoakStack(served, out / "stack", arms, replicas) as stack:
        warm_up(stack)
        time.sleep(3 * stack.scrape_s)  # Prometheus's last sample before t0 holds every warm-up request
        usage_start = snapshot(stack.processes())
        with ResourceSampler(stack.processes, schedule.sample_s) as sampler:  # until the end snapshot
            load = LocustLoad(out / "locust", stack.url, soak_plan(served, list(arms), EXPERIMENT, schedule,
                                                                   out / "locust", stack.locust_port))
            faults = FaultRunner(stack, schedule)
            faults.start(load.started)
            outcome = drive_locust(load.command(), out / "locust" / "locust.log", schedule.duration_s)
            interrupted = outcome.partial == "interrupted" or not finish_faults(faults, schedule, load.started())
            if interrupted:
                faults.stop()
            t0, end = load.started(), time.time()
            if t0 is None:
                raise RuntimeError(f"Locust's test never began (exit {outcome.returncode}): "
                                   f"{log_tail(out / 'locust' / 'locust.log', 10)}")
            healthy = healthy_at_end(stack)
            usage_end = snapshot(stack.processes())
        time.sleep(3 * stack.scrape_s)  # the last scrape after the last request
        records = load.records() + faults.side_records
        samples = since(sampler.samples, t0)
        usage = growth(usage_start, usage_end, samples, end - t0)
        results = collect(stack, schedule, records, faults.done, t0, end, healthy, usage, load.totals(),
                          in_flight=schedule.users if interrupted else 0)
        results["resources"] = samples
        if sampler.error:
            results["resources_error"] = sampler.error
        results["locust"] = {"returncode": outcome.returncode, "partial": outcome.partial,
                             "retry_policy": retry_policy()}
        if interrupted:
            results["interrupted"] = {"at": end, "reached_s": end - t0, "not_run": faults.not_run()}
    results["run"] = {"repo": str(repo), "arms": list(arms), "replicas": replicas, "rate_source": rate_source,
                      "cpu": cpu_name(), "python": platform.python_version(), "t0": t0, "end": end}
    write_records(out / "requests.csv", records, results["faults"], schedule.recovery_goal_s)
    results = {"provenance": stamp, **results}  # the code commit and the CPU it ran on
    (out / "soak.json").write_text(json.dumps(results, indent=1))
    return results


def finish_faults(faults: FaultRunner, schedule: Schedule, t0: float | None) -> bool:
    """Wait for the faults to end after the load did (a fault's own wait bounds it); False on Ctrl-C meanwhile."""
    try:
        faults.join(max(10.0, (t0 or time.time()) + schedule.duration_s + 300 - time.time()))
    except KeyboardInterrupt:
        return False
    return True


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a process manager's stop, `kill`) handled as Ctrl-C: the soak then ends the same way, with a partial
    report and every process it started stopped. Only the main thread can set a handler; elsewhere, no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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

    pool, body = urllib3.PoolManager(maxsize=1), sample_png()
    for i in range(WARMUP_REQUESTS):
        r = send(pool, f"{stack.url}/v1/experiments/{EXPERIMENT}/predict", body, {**PNG, "X-Assignment-Key": f"w{i}"},
                 "warm")
        if r.status != 200:
            raise RuntimeError(f"warm-up request failed: {r.error}; see {stack.workdir}")


def healthy_at_end(stack: SoakStack) -> bool:
    urls = [f"{stack.url}/readyz"] + [f"http://{t.server.cfg.http_url}/v2/health/ready" for t in stack.tritons]
    try:
        return all(httpx.get(u, timeout=5).status_code == 200 for u in urls)
    except httpx.HTTPError:
        return False


def collect(stack: SoakStack, schedule: Schedule, records: list[Record], faults: list[dict], t0: float,
            end: float, healthy: bool, usage: list[dict], locust: dict, in_flight: int = 0) -> dict:
    """`usage`: each process's RSS and descriptors (analyze.growth); `locust`: Locust's own totals
    (LocustLoad.totals), checked against its per-request records; `in_flight`: how many requests an interrupted
    Locust may have recorded after it wrote its totals (one per user)."""
    summary = summarize(records, faults, schedule, t0)
    # Triton and the gateway count the canary's traffic too; the malformed requests are never a 200.
    answered = [r for r in records if r.status == 200 and r.kind in ("good", "canary")]
    # Asked now, not at `end`: the scrapes after the last request (taken while run_soak waited) must count.
    counts = compare(stack.prometheus.client, answered, t0, time.time(), faults)
    counts.update(locust_side(records, locust, in_flight))
    return {"schedule": schedule.to_json(), "faults": faults, "summary": summary, "counts": counts,
            "usage": usage, "healthy_at_end": healthy,
            "goals": goals(summary, counts, usage, faults, schedule, healthy),
            "restarts": {"gateway_starts": stack.gateway_starts,
                         "triton": [t.restarts for t in stack.tritons]}}


def locust_side(records: list[Record], locust: dict, in_flight: int = 0) -> dict:
    """Locust's own statistics against the records its request hook wrote: the same requests, the same failures.
    A Locust stopped by a signal may write its totals while its users' last requests (`in_flight`, at most one a
    user) are still ending, and their records come after: those may be missing from its totals, no others."""
    good = [r for r in records if r.kind == "good"]
    canary = [r for r in records if r.kind == "canary"]
    failed = sum(r.status != 200 for r in good)
    requests, failures = locust.get("requests"), locust.get("failures")
    late = (len(good) - requests, failed - failures) if requests is not None and failures is not None else None
    return {"locust_stats": locust, "locust_records": len(good), "locust_answered": len(good) - failed,
            "canary_answered": sum(r.status == 200 for r in canary), "recorded_after_totals": late,
            "records_match_stats": late is not None and 0 <= late[1] <= late[0] <= in_flight}


def write_records(path: Path, records: list[Record], faults: list[dict], window_s: float) -> None:
    """Every request, one line each, with the fault window it fell in and the kill it was in flight at: the
    report's figures can be checked against them."""
    import csv

    kills = [(f"#{i + 1} {f['kind']}", f["killed_at"]) for i, f in enumerate(faults)
             if f["kind"] in KILLS and "killed_at" in f]
    fields = [*Record.__dataclass_fields__, "fault_window", "in_flight_at_kill"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in sorted(records, key=lambda r: r.start):
            at_kill = next((name for name, at in kills if r.start <= at < r.end), "")
            writer.writerow({**r.to_json(), "fault_window": fault_of(r, faults, window_s),
                             "in_flight_at_kill": at_kill})


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
