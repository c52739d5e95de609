from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.soak.schedule import BUILT_IN, FAULT_KINDS, ScheduleError, load_schedule


def test_built_in_schedules_run_every_implemented_fault_inside_the_run() -> None:
    for name in BUILT_IN:
        schedule = load_schedule(name)
        assert {f.kind for f in schedule.faults} == set(FAULT_KINDS), name
        assert all(0 <= f.at_s < schedule.duration_s for f in schedule.faults)
        assert [f.at_s for f in schedule.faults] == sorted(f.at_s for f in schedule.faults)
    assert load_schedule("short").duration_s == 120 and load_schedule("hour").duration_s == 3600


def test_a_schedule_file_is_read_sorted_with_its_parameters(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"duration_s": 60, "rate": 5, "faults": [
        {"at_s": 30, "kind": "gateway_kill"}, {"at_s": 10, "kind": "malformed_burst", "count": 7}]}))
    schedule = load_schedule(str(path))
    assert [(f.at_s, f.kind, f.params) for f in schedule.faults] == [
        (10, "malformed_burst", {"count": 7}), (30, "gateway_kill", {})]
    assert schedule.users == 0 and schedule.with_rate(9).rate == 9 and schedule.with_rate(None).rate == 5
    assert schedule.with_rate(None).users == 8  # the fewest users, for a low rate
    assert schedule.sample_s == 5 and schedule.to_json()["sample_s"] == 5  # resources sampled every 5 s by default
    path.write_text(json.dumps({"duration_s": 60, "sample_s": 0.5}))
    assert load_schedule(str(path)).sample_s == 0.5


def test_built_in_schedules_leave_the_rate_to_the_capacity_plan_and_users_to_the_rate() -> None:
    schedule = load_schedule("hour")
    assert schedule.rate == 0 and schedule.users == 0
    assert schedule.with_rate(140).users == 28  # 5 requests/s per user at most
    assert schedule.with_rate(140).faults == schedule.faults


@pytest.mark.parametrize("body, message", [
    ({"duration_s": 60, "rate": 5, "faults": [{"at_s": 1, "kind": "meteor"}]}, "unknown fault"),
    ({"duration_s": 60, "rate": 5, "faults": [{"at_s": 60, "kind": "gateway_kill"}]}, "outside the run"),
    ({"duration_s": 60, "rate": -1}, "positive"),
    ({"duration_s": 0}, "positive"),
    ({"duration_s": 60, "sample_s": 0}, "sample_s must be positive"),
    ({"rate": 5}, "bad schedule"),
])
def test_a_schedule_that_cannot_run_fails_before_the_run(tmp_path: Path, body: dict, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ScheduleError, match=message):
        load_schedule(str(path))


def test_an_unknown_schedule_name_says_what_exists() -> None:
    with pytest.raises(ScheduleError, match="short"):
        load_schedule("nonexistent-schedule")
