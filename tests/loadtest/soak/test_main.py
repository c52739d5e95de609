from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.soak import main


def never(*args: object, **kwargs: object) -> dict:
    raise AssertionError("the soak must not start")


def test_no_capacity_plan_and_no_rate_stops_before_anything_starts(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(main, "pick_arms", lambda repo, models: {"a": 1.0, "b": 1.0})
    monkeypatch.setattr(main, "run_soak", never)
    with pytest.raises(SystemExit, match=r"no capacity plan for a .*--rate.*invoke loadtest --models a"):
        main.soak(tmp_path, [], "short", 0.0, 2, tmp_path / "out", "invoke soak", tmp_path / "capacity")


def test_an_interrupted_soak_writes_its_report_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    seen: dict = {}

    def run(repo, arms, schedule, out, replicas, source) -> dict:
        seen.update(rate=schedule.rate, users=schedule.users, source=source)
        return {"interrupted": {"reached_s": 42.0}, "goals": []}

    def write(results: dict, out: Path, command: str) -> Path:
        (out / "soak.md").parent.mkdir(parents=True, exist_ok=True)
        (out / "soak.md").write_text("PARTIAL")
        return out / "soak.md"

    monkeypatch.setattr(main, "pick_arms", lambda repo, models: {"a": 1.0, "b": 1.0})
    monkeypatch.setattr(main, "run_soak", run)
    monkeypatch.setattr(main, "write", write)
    with pytest.raises(SystemExit, match="interrupted after 42 s; partial report in"):
        main.soak(tmp_path, [], "short", 60.0, 2, tmp_path / "out", "invoke soak", tmp_path)
    assert seen == {"rate": 60.0, "users": 12, "source": "--rate"}
