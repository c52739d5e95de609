"""The soak as one call, for `invoke soak`: schedule, rate, run, report, and an exit status from the goals."""

from __future__ import annotations

import json
import re
from pathlib import Path

from loadtest.report.soak import write
from loadtest.soak.analyze import goals, growth
from loadtest.soak.rate import chosen_rate
from loadtest.soak.run import pick_arms, run_soak
from loadtest.soak.schedule import Schedule, ScheduleError, load_schedule
from serving.provenance import code_version


def soak(repo: Path, models: list[str], schedule_name: str, rate: float, replicas: int, out: Path,
         command: str, capacity: Path) -> dict:
    """`capacity`: where the capacity plans are (one folder per model), for the default rate."""
    try:
        schedule = load_schedule(schedule_name)
    except ScheduleError as exc:
        raise SystemExit(f"error: {exc}") from None
    arms = list(pick_arms(repo, models))
    chosen = chosen_rate(rate, schedule.rate, arms, capacity)  # before anything starts: a missing plan is one line
    try:
        results = run_soak(repo, arms, schedule.with_rate(chosen.rate), out, replicas, chosen.source)
    except KeyboardInterrupt:  # before the load began, or a second Ctrl-C while collecting: no report
        raise SystemExit("soak interrupted with no report (before the load began, or again while its results were "
                         "collected); every process it started is stopped") from None
    report = write(results, out, command)
    print(report.read_text())
    if "interrupted" in results:
        raise SystemExit(f"soak interrupted after {results['interrupted']['reached_s']:.0f} s; partial report in "
                         f"{report}")
    missed = [g["goal"] for g in results["goals"] if not g["met"]]
    if missed:
        raise SystemExit(f"soak: {len(missed)} goals missed ({'; '.join(missed)}); report in {report}")
    return results


def rejudge(out: Path) -> dict:
    """The goals of a finished soak judged again from its soak.json by today's analysis (a rule corrected after an
    hour's run need not cost another hour), its report rewritten. The run's own stamp stays; `judged_by` names the
    code that judged it."""
    path = out / "soak.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: rejudge takes the folder of a finished soak")
    results = json.loads(path.read_text())
    run, usage = results["run"], results["usage"]
    results["usage"] = growth({u["role"]: u["start"] for u in usage}, {u["role"]: u["end"] for u in usage},
                              results["resources"], run["end"] - run["t0"])
    results["goals"] = goals(results["summary"], results["counts"], results["usage"], results["faults"],
                             Schedule.parse(results["schedule"]), results["healthy_at_end"])
    results["judged_by"] = code_version()
    path.write_text(json.dumps(results, indent=1))
    command = re.search(r"^Command: `(.+)`$", (out / "soak.md").read_text(), re.M)
    print(write(results, out, command[1] if command else "").read_text())
    return results
