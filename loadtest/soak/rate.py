"""The soak's default rate: 70% of the capacity the capacity plan measured for the soak's models.

A capacity plan is `invoke loadtest --shape step`'s loadtest.json, one folder per model (`--each`); its
`capacity.plan.replica_rps` is the most one replica sustained within the SLO (the step the confirmation run held,
when it backed off). The soak's load goes through the gateway, which decodes and resizes each image: its plans are
measured on that path (`--target gateway`, under reports/soak/capacity/). A plan measured on Triton's own endpoint
(reports/capacity/) overstates it: at 70% of those plans the gateway saturated (p50 118 ms, docs/loadtests.md).
The soak splits its load evenly over its arms, and while one replica is killed the other carries all of it, so the
capacity it takes is one replica's for that mix: the harmonic mean of the arms' capacities (each arm's requests
take 1/capacity of the replica's time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FRACTION = 0.7  # of capacity: the load level


@dataclass(frozen=True)
class SoakRate:
    rate: float
    source: str  # where the rate came from, in words, for the report

    def to_json(self) -> dict:
        return {"rate": self.rate, "source": self.source}


def plan_command(model: str, root: Path) -> str:
    """The command that writes `model`'s capacity plan where `capacity_of` looks for it."""
    return (f"invoke loadtest --models {model} --target gateway --shape step --user-rps auto --warmup 5 "
            f"--confirm-seconds 20 --each --out {root}")


def capacity_of(model: str, root: Path) -> tuple[float, Path, str]:
    """One replica's capacity for `model` (requests/s), the file it was read from and the target it was measured
    on; SystemExit naming --rate and the command that makes a plan when there is none."""
    path = root / model / "loadtest.json"
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        run = {}
    rps = ((run.get("capacity") or {}).get("plan") or {}).get("replica_rps")
    if not rps:
        raise SystemExit(f"error: no capacity plan for {model} ({path} has none): give the soak's rate with "
                         f"--rate, or measure one first: {plan_command(model, root)}")
    return float(rps), path, (run.get("spec") or {}).get("target", "http")


def default_rate(models: list[str], root: Path, fraction: float = FRACTION) -> SoakRate:
    """`fraction` of one replica's capacity for an even mix of `models`."""
    found = {m: capacity_of(m, root) for m in models}
    mixed = len(found) / sum(1 / rps for rps, _, _ in found.values())
    parts = ", ".join(f"{m} {rps:.1f}/s ({path})" for m, (rps, path, _) in found.items())
    mix = f"their even mix {mixed:.1f}/s (harmonic mean), " if len(found) > 1 else ""
    return SoakRate(round(fraction * mixed, 1), f"{fraction:.0%} of the capacity plans' one-replica capacity: "
                                                f"{parts}; {mix}measured {_path(t for _, _, t in found.values())}")


def _path(targets: Iterable[str]) -> str:
    """Where the plans were measured, in words: the soak's own path is the gateway's."""
    named = {"gateway": "through the gateway, the soak's path",
             "experiment": "through the gateway's A/B experiment, the soak's path"}
    return " and ".join(sorted({named.get(t, f"on Triton's {t} endpoint, not through the gateway (the soak's path "
                                              "costs more: plans measured with --target gateway fit it)")
                                for t in targets}))


def chosen_rate(explicit: float, schedule_rate: float, models: list[str], root: Path) -> SoakRate:
    """--rate if given, else the schedule file's own rate, else 70% of the capacity plan's."""
    if explicit > 0:
        return SoakRate(explicit, "--rate")
    if schedule_rate > 0:
        return SoakRate(schedule_rate, "the schedule file's rate")
    return default_rate(models, root)
