from __future__ import annotations

import pytest

from loadtest.analysis.capacity import Plan, Point, Slo, curve, instance_count, knee, plan_capacity, sustainable
from tests.conftest import present

# A typical curve: throughput grows with users until the server saturates, then only latency grows.
STEPS = [
    {"users": 1, "rps": 100.0, "latency_ms": 10, "latency_s": {"0.95": 0.0102}, "error_rate": 0.0},
    {"users": 3, "rps": 280.0, "latency_ms": 12, "latency_s": {"0.95": 0.0118}, "error_rate": 0.0},
    {"users": 5, "rps": 400.0, "latency_ms": 15, "latency_s": {"0.95": 0.0149}, "error_rate": 0.0},
    {"users": 7, "rps": 420.0, "latency_ms": 30, "latency_s": {"0.95": 0.0301}, "error_rate": 0.0},
    {"users": 9, "rps": 425.0, "latency_ms": 60, "latency_s": {"0.95": 0.0602}, "error_rate": 0.02},
]


def test_curve_prefers_prometheus_sub_ms_quantiles() -> None:
    points = curve(STEPS, 0.95)
    assert points[0] == Point(1, 100.0, 0.0102, 0.0)
    assert curve([{**STEPS[0], "latency_s": {}}], 0.95)[0].latency_s == 0.010  # Locust's whole ms otherwise


def test_knee_is_where_throughput_stops_paying_for_latency() -> None:
    assert present(knee(curve(STEPS, 0.95))).users == 5
    assert knee(curve(STEPS[:2], 0.95)) is None  # too few points to tell


def test_max_sustainable_meets_latency_and_error_budget() -> None:
    points = curve(STEPS, 0.95)
    assert [p.users for p in sustainable(points, Slo(0.050))] == [7, 5, 3, 1]  # 9 users: 60 ms and 2% errors
    assert sustainable(points, Slo(0.020))[0].users == 5
    assert sustainable(points, Slo(0.005)) == []


def test_a_paced_step_that_fell_behind_its_rate_is_not_sustainable() -> None:
    points = curve(STEPS, 0.95, user_rps=80.0)                 # offered 80, 240, 400, 560, 720 req/s
    assert points[2].offered_rps == 400.0 and points[2].kept_pace
    assert not points[3].kept_pace                             # 420 of 560: closed-loop, latency understated
    assert sustainable(points, Slo(0.050))[0].users == 5
    assert curve(STEPS, 0.95)[3].kept_pace, "closed-loop users offer no rate to fall behind"


def test_replicas_and_cost_for_a_target_load() -> None:
    plan = Plan(target_rps=1000, headroom=0.25, replica_rps=400, instances_per_replica=2, price_per_instance_hour=0.36)
    assert plan.replicas == 4                                   # 1000 / (400 * 0.75) = 3.33 -> 4
    assert plan.instance_rps == 200
    assert plan.cost_per_million == pytest.approx(4 * 2 * 0.36 / (1000 * 3600) * 1e6)  # 0.8 per million


def test_plan_capacity_without_a_passing_step_has_no_plan() -> None:
    result = plan_capacity(STEPS, Slo(0.001), 100, 0.2, 1.0, 1)
    assert result["max_sustainable"] is None and result["plan"] is None and len(result["curve"]) == 5


def test_instance_count_from_config() -> None:
    assert instance_count("instance_group {\n  count: 2\n  kind: KIND_CPU\n}\n") == 2
    assert instance_count('name: "m"\n') == 1


def test_capacity_section_reports_plan_and_confirmation() -> None:
    from loadtest.report.run import capacity_lines

    results = {"capacity": plan_capacity(STEPS, Slo(0.050), 1000, 0.25, 0.36, 2),
               "confirmation": {"users": 8, "seconds": 20, "predicted_rps": 315.0, "measured_rps": 300.0,
                                "slo_latency_s": 0.05, "measured_latency_s": 0.061, "error_rate": 0.0, "met": False}}
    text = "\n".join(capacity_lines(results))
    assert "420.0 req/s (7 users" in text and "**4 replica(s)**" in text and "MISSED" in text


def test_capacity_section_shows_a_back_off_and_every_confirmation() -> None:
    from loadtest.analysis.capacity import replan
    from loadtest.report.run import capacity_lines

    cap = plan_capacity(STEPS, Slo(0.050), 1000, 0.2, 1.0, 1)
    attempt = {"seconds": 10, "predicted_rps": 336.0, "measured_rps": 330.0, "slo_latency_s": 0.05,
               "measured_latency_s": 0.07, "error_rate": 0.0, "users": 7, "met": False}
    met = {**attempt, "predicted_rps": 320.0, "measured_rps": 318.0, "measured_latency_s": 0.02, "users": 5,
           "met": True}
    results = {"capacity": replan(cap, cap["sustainable"][1]), "confirmations": [attempt, met], "confirmation": met}
    text = "\n".join(capacity_lines(results))
    assert "max sustainable throughput per replica: 420.0 req/s" in text
    assert "planned from the next lower step, 400.0 req/s (5 users)" in text
    assert "| 1: 10 s, 7 users | 336.0 | 330.0 | 70.00 | 0.00% | MISSED |" in text
    assert "| 2: 10 s, 5 users | 320.0 | 318.0 | 20.00 | 0.00% | met |" in text
