"""The soak's fault schedule as data: a JSON file, or one of the built-in schedules.

A schedule file looks like
    {"duration_s": 120, "rate": 20, "users": 8, "slo_p99_ms": 1000,
     "faults": [{"at_s": 15, "kind": "triton_kill", "replica": 0}, ...]}
Every fault runs once at its own second after the load starts; the kinds are FAULT_KINDS. `rate` and `users` are
optional: without a rate, `invoke soak` takes 70% of the capacity plan's (loadtest/soak/rate.py); without users,
enough Locust users that each is paced at no more than USER_RPS. Also optional: `slo_p99_ms` (1000),
`recovery_goal_s` (30) and `sample_s` (5), how often each process's RSS and descriptors are sampled over the load.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

# What each kind does (loadtest/soak/faults.py runs them).
FAULT_KINDS = {
    "triton_kill": "SIGKILL one Triton replica's process group; its supervisor restarts it, the other serves",
    "gateway_kill": "SIGKILL the gateway and start it again at once; Locust's clients retry (urllib3 Retry)",
    "malformed_burst": "a burst of malformed requests (bad PNG, wrong tensor size, bad KServe JSON): each must get 400",
    "bad_experiments_file": "the experiments file overwritten with invalid JSON, restored later: last good state holds",
    "canary": "a canary ramped and promoted on its schedule, then another rolled back through the admin API "
              "(not yet by its error rule)",
    "publish_version": "a new version of an arm's model published under load (the publication's atomic swap), "
                       "then loaded on every replica through the gateway",
    "canary_error_rollback": "a failing candidate (a copy of the baseline, unloaded from Triton behind the "
                             "gateway's back) rolled back by its canary's error rule, on an experiment of its own",
}


# Each Locust user's pace at most: a user waiting on a slow answer sends its next request late, so more users at a
# lower pace keep the offered rate through a fault's slow seconds.
USER_RPS = 5.0
MIN_USERS = 8


class ScheduleError(ValueError):
    """A schedule file that cannot be run."""


@dataclass(frozen=True)
class Fault:
    at_s: float                         # seconds after the load starts
    kind: str
    params: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, body: object, duration_s: float) -> Fault:
        if not isinstance(body, dict) or "at_s" not in body or "kind" not in body:
            raise ScheduleError(f"a fault is an object with at_s and kind, not {body!r}")
        params = {k: v for k, v in body.items() if k not in ("at_s", "kind")}
        kind, at_s = str(body["kind"]), float(body["at_s"])
        if kind not in FAULT_KINDS:
            raise ScheduleError(f"unknown fault '{kind}'; known: {sorted(FAULT_KINDS)}")
        if not 0 <= at_s < duration_s:
            raise ScheduleError(f"fault '{kind}' at {at_s:g}s is outside the run (0 to {duration_s:g}s)")
        return cls(at_s, kind, params)

    def to_json(self) -> dict:
        return {"at_s": self.at_s, "kind": self.kind, **self.params}


@dataclass(frozen=True)
class Schedule:
    duration_s: float
    rate: float                         # requests per second Locust aims for, all together; 0: not yet chosen
    users: int                          # Locust users (each with its own connection); 0: from the rate
    slo_p99_ms: float
    faults: tuple[Fault, ...]
    recovery_goal_s: float = 30.0       # p99 back within the SLO this soon after each fault
    sample_s: float = 5.0               # RSS and descriptors of each process sampled this often over the load

    @classmethod
    def parse(cls, body: object) -> Schedule:
        if not isinstance(body, dict):
            raise ScheduleError("a schedule is a JSON object")
        try:
            duration = float(body["duration_s"])
            faults = tuple(sorted((Fault.parse(f, duration) for f in body.get("faults", [])), key=lambda f: f.at_s))
            schedule = cls(duration, float(body.get("rate", 0)), int(body.get("users", 0)),
                           float(body.get("slo_p99_ms", 1000)), faults, float(body.get("recovery_goal_s", 30)),
                           float(body.get("sample_s", 5)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ScheduleError(f"bad schedule: {exc}") from None
        if schedule.duration_s <= 0 or schedule.sample_s <= 0 or schedule.rate < 0 or schedule.users < 0:
            raise ScheduleError("duration_s and sample_s must be positive; rate and users positive where given")
        return schedule

    def with_rate(self, rate: float | None) -> Schedule:
        """The schedule at `rate` (None or 0: its own), with its users, or enough for that rate."""
        rate = rate or self.rate
        users = self.users or max(MIN_USERS, math.ceil(rate / USER_RPS))
        return replace(self, rate=rate, users=users)

    def to_json(self) -> dict:
        return {"duration_s": self.duration_s, "rate": self.rate, "users": self.users, "slo_p99_ms": self.slo_p99_ms,
                "recovery_goal_s": self.recovery_goal_s, "sample_s": self.sample_s,
                "faults": [f.to_json() for f in self.faults]}


def _faults(*items: tuple[float, str, dict]) -> list[dict]:
    return [{"at_s": at, "kind": kind, **params} for at, kind, params in items]


# Two minutes, every implemented fault once, 12-16 s apart: far enough that each one's recovery is measured alone.
SHORT = {"duration_s": 120, "slo_p99_ms": 1000, "faults": _faults(
    (10, "triton_kill", {"replica": 0}),
    (22, "malformed_burst", {"count": 60}),
    (34, "gateway_kill", {}),
    (46, "canary", {"interval_s": 3}),
    (62, "canary_error_rollback", {"interval_s": 3}),
    (77, "bad_experiments_file", {"hold_s": 8}),
    (90, "publish_version", {"arm": 0}),
    (105, "triton_kill", {"replica": 0}),  # the same replica: the other runs throughout, for the RSS goal
)}

# Neither gives a rate: it comes from the capacity plan (70%), or --rate.
# The hour: the same faults in each quarter, the rest steady load; so each half of the hour has the same faults, and
# a descriptor count still rising in the second half is a leak, not the first half's connections (analyze.py).
HOUR = {"duration_s": 3600, "slo_p99_ms": 1000, "faults": _faults(
    *[(round_ * 900 + offset, kind, params) for round_ in range(4) for offset, kind, params in (
        (120, "triton_kill", {"replica": 0}),  # replica 1 runs the whole hour: its RSS and descriptors compare
        (300, "malformed_burst", {"count": 200}),
        (480, "gateway_kill", {}),
        (600, "canary", {"interval_s": 20}),
        (660, "canary_error_rollback", {"interval_s": 10}),
        (720, "bad_experiments_file", {"hold_s": 30}),
        (840, "publish_version", {"arm": round_ % 2}),
    )]
)}
BUILT_IN = {"short": SHORT, "hour": HOUR}


def load_schedule(name_or_path: str) -> Schedule:
    """'short', 'hour', or a JSON file."""
    if name_or_path in BUILT_IN:
        return Schedule.parse(BUILT_IN[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise ScheduleError(f"no schedule '{name_or_path}': give a JSON file or one of {sorted(BUILT_IN)}")
    try:
        return Schedule.parse(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{path}: not JSON ({exc})") from None
