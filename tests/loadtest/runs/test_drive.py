from __future__ import annotations

from pathlib import Path

from loadtest.analysis.shapes import StepPlan
from loadtest.metrics.promql import Window
from loadtest.runs.drive import load_plan, locust_command, run_window
from loadtest.runs.plan import LoadPlan
from loadtest.runs.spec import LoadSpec
from loadtest.runs.stack import Endpoints

ENDS = Endpoints("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")


def spec(**kw) -> LoadSpec:
    return LoadSpec(Path("repo"), Path("data.tar.gz"), Path("out"), **kw)


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_locust_is_headless_bounded_and_loopback() -> None:
    one = spec(models=("a", "b"), seconds=20, max_requests=500, users=4, rate=100)
    cmd = locust_command(one, ENDS, Path("plan.json"))
    assert "--headless" in cmd and "TritonHttpUser" in cmd and "--processes" not in cmd
    assert option(cmd, "--host") == "http://127.0.0.1:1" and option(cmd, "--tz-plan") == "plan.json"
    assert option(cmd, "-f").endswith("constant_shape.py")
    plan = load_plan(one, ENDS, Path("i.npy"), [9000])
    assert plan.grpc == "127.0.0.1:2" and plan.max_seconds == 20 and plan.max_requests == 500
    assert plan.user_rps == 25.0 and plan.models == ("a", "b") and plan.images_file == "i.npy"


def test_step_shape_gateway_target_and_processes() -> None:
    one = spec(target="experiment", shape="step", processes=2, models=("a", "b"), step=StepPlan(slo_ms=25),
               warmup_s=3)
    cmd = locust_command(one, ENDS, Path("plan.json"))
    assert "GatewayExperimentUser" in cmd and option(cmd, "--host") == "http://127.0.0.1:4"
    assert option(cmd, "--processes") == "2" and option(cmd, "-f").endswith("step_shape.py")
    plan = load_plan(one, ENDS, Path("i.npy"), [9000, 9001])
    assert plan.exporter_ports == (9000, 9001) and plan.step.slo_ms == 25 and plan.user_rps == 0.0
    assert plan.step.warmup_s == 3
    paced = load_plan(spec(shape="step", step=StepPlan(user_rps=25)), ENDS, Path("i.npy"), [9000])
    assert paced.user_rps == 25  # each user paced: every step adds arrival rate


def test_the_plan_makes_the_round_trip_through_json(tmp_path: Path) -> None:
    plan = load_plan(spec(shape="step", step=StepPlan(slo_ms=25, user_rps=3)), ENDS, Path("i.npy"), [9000, 9001])
    assert LoadPlan.read(plan.write(tmp_path / "plan.json")) == plan


def test_window_prefers_locusts_own_test_times(tmp_path: Path) -> None:
    fallback = Window(1.0, 9.0)
    assert run_window(tmp_path, fallback) == fallback
    (tmp_path / "run-times.json").write_text('{"start": 2.0, "end": 7.5}')
    assert run_window(tmp_path, fallback) == Window(2.0, 7.5)
