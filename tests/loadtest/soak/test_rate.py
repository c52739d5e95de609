from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.soak.rate import chosen_rate, default_rate


def plan(root: Path, model: str, replica_rps: float, target: str = "gateway") -> None:
    (root / model).mkdir(parents=True)
    (root / model / "loadtest.json").write_text(json.dumps({"spec": {"target": target},
                                                            "capacity": {"plan": {"replica_rps": replica_rps}}}))


def test_the_default_is_70_percent_of_one_replica_s_capacity_for_the_even_mix(tmp_path: Path) -> None:
    plan(tmp_path, "fast", 300.0)
    plan(tmp_path, "slow", 100.0)
    rate = default_rate(["fast", "slow"], tmp_path)
    assert rate.rate == pytest.approx(0.7 * 150.0)  # half the requests at 1/300 s, half at 1/100 s: 150/s
    assert "70%" in rate.source and str(tmp_path / "slow" / "loadtest.json") in rate.source
    assert default_rate(["fast"], tmp_path).rate == pytest.approx(210.0)
    assert "through the gateway, the soak's path" in rate.source


def test_a_plan_measured_on_triton_s_own_endpoint_is_named_as_such(tmp_path: Path) -> None:
    plan(tmp_path, "direct", 300.0, target="http")
    assert "on Triton's http endpoint, not through the gateway" in default_rate(["direct"], tmp_path).source


def test_no_plan_for_a_model_fails_naming_rate_and_the_command_that_makes_one(tmp_path: Path) -> None:
    plan(tmp_path, "fast", 300.0)
    (tmp_path / "unplanned").mkdir()
    (tmp_path / "unplanned" / "loadtest.json").write_text(json.dumps({"capacity": None}))  # a constant-shape run
    for missing in ("unplanned", "absent"):
        with pytest.raises(SystemExit, match=rf"no capacity plan for {missing}.*--rate.*invoke loadtest --models "
                                             rf"{missing} --target gateway --shape step .*--out {tmp_path}"):
            default_rate(["fast", missing], tmp_path)


def test_an_explicit_rate_wins_then_the_schedule_file_s_then_the_plan(tmp_path: Path) -> None:
    plan(tmp_path, "m", 100.0)
    assert chosen_rate(12.0, 30.0, ["m"], tmp_path).to_json() == {"rate": 12.0, "source": "--rate"}
    assert chosen_rate(0.0, 30.0, ["m"], tmp_path).rate == 30.0
    assert chosen_rate(0.0, 0.0, ["m"], tmp_path).rate == 70.0
    assert chosen_rate(5.0, 0.0, ["no-plan-needed"], tmp_path).rate == 5.0
