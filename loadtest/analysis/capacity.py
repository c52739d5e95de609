"""Capacity planning from a step-load: the latency-throughput curve, its knee, the most throughput that meets the
SLO, and what a target load needs in replicas and costs per million inferences."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# A paced step that carried less than this share of its offered rate ran closed-loop: users waited on answers
# instead of sending on schedule, so its latency understates what that arrival rate would see.
MIN_CARRIED = 0.9


@dataclass(frozen=True)
class Point:
    users: int
    rps: float               # successful requests per second
    latency_s: float | None  # the SLO's quantile
    error_rate: float
    offered_rps: float | None = None  # paced users: users x their rate; None for closed-loop users

    @property
    def kept_pace(self) -> bool:
        return self.offered_rps is None or self.rps >= MIN_CARRIED * self.offered_rps


@dataclass(frozen=True)
class Slo:
    latency_s: float
    quantile: float = 0.95
    max_error_rate: float = 0.01

    def met(self, point: Point) -> bool:
        return point.latency_s is not None and point.latency_s <= self.latency_s and \
            point.error_rate <= self.max_error_rate


def curve(steps: list[dict], quantile: float, user_rps: float = 0.0) -> list[Point]:
    """Points from a step record: Prometheus's sub-ms quantile where read back, else Locust's whole-ms one.
    `user_rps` > 0: each user was paced at that rate."""
    points = []
    for s in steps:
        latency = (s.get("latency_s") or {}).get(str(quantile))
        if latency is None:
            latency = s["latency_ms"] / 1e3
        offered = s["users"] * user_rps if user_rps > 0 else None
        points.append(Point(s["users"], s["rps"], latency, s["error_rate"], offered))
    return points


def knee(points: list[Point]) -> Point | None:
    """Where latency starts to climb faster than throughput: the point farthest below the chord from the first to
    the last point, in coordinates normalised to [0, 1] (the Kneedle method on a convex curve)."""
    usable = [(p, p.latency_s) for p in points if p.latency_s is not None]
    if len(usable) < 3:
        return None
    x0, x1 = min(p.rps for p, _ in usable), max(p.rps for p, _ in usable)
    y0, y1 = min(latency for _, latency in usable), max(latency for _, latency in usable)
    if x1 == x0 or y1 == y0:
        return None

    def gap(point: tuple[Point, float]) -> float:
        p, latency = point
        x, y = (p.rps - x0) / (x1 - x0), (latency - y0) / (y1 - y0)
        return x - y  # above 0: more throughput than latency gained, relative to the ends

    best = max(usable, key=gap)
    return best[0] if gap(best) > 0 else None


def sustainable(points: list[Point], slo: Slo) -> list[Point]:
    """The measured points that met the SLO and kept their pace, most throughput first (no interpolation: only
    what was seen)."""
    return sorted((p for p in points if slo.met(p) and p.kept_pace), key=lambda p: p.rps, reverse=True)


@dataclass(frozen=True)
class Plan:
    target_rps: float
    headroom: float                  # fraction of each replica's capacity kept spare
    replica_rps: float               # max sustainable throughput of one replica
    instances_per_replica: int
    price_per_instance_hour: float

    @property
    def instance_rps(self) -> float:
        return self.replica_rps / self.instances_per_replica

    @property
    def replicas(self) -> int:
        usable = self.replica_rps * (1 - self.headroom)
        return max(1, math.ceil(self.target_rps / usable)) if usable > 0 else 0

    @property
    def cost_per_million(self) -> float | None:
        """Instance-hours of the fleet per hour, over the inferences it serves per hour at the target rate."""
        if self.target_rps <= 0 or self.replicas == 0:
            return None
        hourly = self.replicas * self.instances_per_replica * self.price_per_instance_hour
        return hourly / (self.target_rps * 3600) * 1e6

    def to_dict(self) -> dict:
        return {**asdict(self), "instance_rps": self.instance_rps, "replicas": self.replicas,
                "cost_per_million": self.cost_per_million}


def instance_count(config_text: str) -> int:
    """Model instances per Triton replica, from config.pbtxt's instance_group entries (1 when unspecified)."""
    counts = [int(line.split(":")[1]) for line in config_text.splitlines() if line.strip().startswith("count:")]
    return sum(counts) or 1


def plan_capacity(steps: list[dict], slo: Slo, target_rps: float, headroom: float, price_per_instance_hour: float,
                  instances: int, user_rps: float = 0.0) -> dict:
    """Everything the report shows for one variant's step-load."""
    points = curve(steps, slo.quantile, user_rps)
    passing, bend = sustainable(points, slo), knee(points)
    best = passing[0] if passing else None
    plan = Plan(target_rps, headroom, best.rps, instances, price_per_instance_hour) if best else None
    return {"slo": asdict(slo), "curve": [asdict(p) for p in points], "knee": asdict(bend) if bend else None,
            "max_sustainable": asdict(best) if best else None, "sustainable": [asdict(p) for p in passing],
            "plan": plan.to_dict() if plan else None, "planned_from": asdict(best) if best else None}


def replan(capacity: dict, point: dict) -> dict:
    """The capacity record with its plan taken from `point`, a lower sustainable step, after a confirmation at the
    higher one missed."""
    old = capacity["plan"]
    plan = Plan(old["target_rps"], old["headroom"], point["rps"], old["instances_per_replica"],
                old["price_per_instance_hour"])
    return {**capacity, "plan": plan.to_dict(), "planned_from": point}
