from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest.analysis.shapes import ConstantPlan, StepPlan
from loadtest.runs.plan import LoadPlan, main, plan_of, with_settings


def test_settings_name_the_plans_own_fields() -> None:
    plan = with_settings(LoadPlan(), ["models=a,b", "exporter_ports=9000,9001", "shape=step", "step.slo_ms=50",
                                      "constant.rate=8", "linger_s=0"])
    assert plan.models == ("a", "b") and plan.exporter_ports == (9000, 9001) and plan.linger_s == 0.0
    assert plan.step == StepPlan(slo_ms=50.0) and plan.constant == ConstantPlan(4, 30.0, 8.0)
    for bad in (["nope=1"], ["step.nope=1"], ["models"], ["images.x=1"]):
        with pytest.raises(ValueError):
            with_settings(LoadPlan(), bad)


def test_a_plan_file_written_by_hand_is_read_back(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "plan.json"), "models=m", "constant.users=2", "constant.rate=10"]) == 0
    plan = plan_of(SimpleNamespace(tz_plan=str(tmp_path / "plan.json")))
    assert plan.models == ("m",) and plan.user_rps == 5.0
    capsys.readouterr()
    assert main(["-"]) == 0 and LoadPlan.from_dict(json.loads(capsys.readouterr().out)) == LoadPlan()
    with pytest.raises(SystemExit, match="--tz-plan"):
        plan_of(SimpleNamespace(tz_plan=""))


def test_unknown_fields_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="no field"):
        LoadPlan.from_dict({"modles": ["a"]})
    with pytest.raises(ValueError, match="unknown shape"):
        LoadPlan.from_dict({"shape": "ramp"})
    assert LoadPlan.from_dict({"step": {"slo_ms": 20}}).step.slo_ms == 20
