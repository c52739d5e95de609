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


def test_rejudge_judges_a_finished_soak_again_from_its_json_and_rewrites_its_report(tmp_path: Path) -> None:
    import json

    from loadtest.report.soak import write
    from tests.loadtest.report.test_soak import results

    finished = results()
    by_old_rule = next(g for g in finished["goals"] if g["goal"] == "no descriptor growth")
    by_old_rule.update(met=False, detail="judged by an older rule")
    (tmp_path / "soak.json").write_text(json.dumps(finished))
    write(finished, tmp_path, "invoke soak --schedule hour")
    judged = main.rejudge(tmp_path)
    again = next(g for g in judged["goals"] if g["goal"] == "no descriptor growth")
    # today's rule on the run's own samples
    assert again["met"] and "highest level in the first half 41" in again["detail"]
    assert json.loads((tmp_path / "soak.json").read_text())["judged_by"] == judged["judged_by"] != ""
    md = (tmp_path / "soak.md").read_text()
    assert "Command: `invoke soak --schedule hour`" in md and "judged again from this run's soak.json" in md
    with pytest.raises(SystemExit, match="soak.json not found"):
        main.rejudge(tmp_path / "nothing")
