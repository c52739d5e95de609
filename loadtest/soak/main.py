"""The soak as one call, for `invoke soak`: schedule, run, report, and an exit status from the goals."""

from __future__ import annotations

from pathlib import Path

from loadtest.report.soak import write
from loadtest.soak.run import run_soak
from loadtest.soak.schedule import ScheduleError, load_schedule


def soak(repo: Path, models: list[str], schedule_name: str, rate: float, replicas: int, out: Path,
         command: str) -> dict:
    try:
        schedule = load_schedule(schedule_name).with_rate(rate)
    except ScheduleError as exc:
        raise SystemExit(f"error: {exc}") from None
    results = run_soak(repo, models, schedule, out, replicas)
    report = write(results, out, command)
    print(report.read_text())
    missed = [g["goal"] for g in results["goals"] if not g["met"]]
    if missed:
        raise SystemExit(f"soak: {len(missed)} goals missed ({'; '.join(missed)}); report in {report}")
    return results
