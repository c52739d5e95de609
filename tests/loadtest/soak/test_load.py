from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loadtest.runs.command import LOCUSTFILE, SHAPE_FILES
from loadtest.runs.plan import LoadPlan
from loadtest.soak.load import IMAGES, LocustLoad, soak_plan
from loadtest.soak.schedule import Schedule


class Entry:
    class io:  # noqa: N801  (the manifest entry's attribute)
        input_dims = (3, 8, 8)


def test_the_plan_paces_the_schedule_s_users_to_its_rate_and_records_every_request(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("loadtest.soak.load.read_manifest", lambda repo: type("M", (), {"models": {"a": Entry,
                                                                                                   "b": Entry}}))
    plan = soak_plan(tmp_path, ["a", "b"], "soak", Schedule(120, 40.0, 8, 1000, ()), tmp_path / "locust", 9999)
    assert (plan.constant.users, plan.constant.rate, plan.user_rps, plan.max_seconds) == (8, 40.0, 5.0, 120)
    assert plan.records_file == str(tmp_path / "locust" / "records.jsonl") and plan.exporter_ports == (9999,)
    with np.load(plan.images_file) as images:
        assert {n: images[n].shape for n in images.files} == {"a": (IMAGES, 3, 8, 8), "b": (IMAGES, 3, 8, 8)}


def test_locust_runs_the_soak_user_on_the_constant_shape_through_the_one_command_builder(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl.1").write_text("left by an earlier run")
    load = LocustLoad(tmp_path, "http://127.0.0.1:8080", LoadPlan(run_file=str(tmp_path / "run-times.json"),
                                                                  records_file=str(tmp_path / "records.jsonl")))
    cmd = load.command()
    assert cmd[cmd.index("-f") + 1] == f"{LOCUSTFILE},{SHAPE_FILES['constant']}" and "SoakUser" in cmd
    assert cmd[cmd.index("--host") + 1] == "http://127.0.0.1:8080" and "--headless" in cmd
    assert not (tmp_path / "records.jsonl.1").exists() and load.records() == []
    assert load.started() is None
    (tmp_path / "run-times.json").write_text(json.dumps({"start": 123.5}))
    assert load.started() == 123.5


def test_locust_s_own_totals_are_its_csv_aggregated_row(tmp_path: Path) -> None:
    load = LocustLoad(tmp_path, "http://x", LoadPlan())
    assert load.totals() == {"requests": None, "failures": None}
    (tmp_path / "locust_stats.csv").write_text('Type,Name,Request Count,Failure Count\nPOST,soak,10,2\n'
                                               ',Aggregated,10,2\n')
    assert load.totals() == {"requests": 10, "failures": 2}
