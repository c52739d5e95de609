from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadtest.analysis.shapes import StepPlan
from loadtest.metrics.promql import Window
from loadtest.report.run import markdown
from loadtest.runs import run
from loadtest.runs.plan import LoadPlan
from loadtest.runs.run import CapacityGoal, Endpoints, LoadSpec, load_plan, locust_command, run_window
from tests.serving.manifests import entry, write

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


@pytest.mark.parametrize("bad, message", [({"target": "udp"}, "unknown target"), ({"shape": "ramp"}, "unknown shape"),
                                          ({"seconds": 0}, "positive"), ({"target": "experiment"}, "two models")])
def test_bad_specs_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**bad).validate()


def test_window_prefers_locusts_own_test_times(tmp_path: Path) -> None:
    fallback = Window(1.0, 9.0)
    assert run_window(tmp_path, fallback) == fallback
    (tmp_path / "run-times.json").write_text('{"start": 2.0, "end": 7.5}')
    assert run_window(tmp_path, fallback) == Window(2.0, 7.5)


def test_partial_results_are_marked() -> None:
    results = {"spec": {"target": "http", "shape": "constant", "models": [], "processes": 1}, "partial": "interrupted",
               "window": {"seconds": 2.0}, "locust": {"requests": {"m": {"success": 10.0, "failure": 2.0}},
                                                      "latency_s": {"m": {"0.5": 0.0012}}}, "triton": {}}
    text = markdown(results)
    assert "PARTIAL RESULTS" in text and "interrupted" in text
    assert "| m | 12 | 2 | 5.0 | 1.20 |" in text


def test_each_model_runs_on_its_own_and_a_partial_run_stops_the_rest(monkeypatch, tmp_path: Path) -> None:
    seen: list[tuple[tuple[str, ...], Path, str]] = []

    def fake_capacity(one: LoadSpec, goal: CapacityGoal) -> dict:
        seen.append((one.models, one.out, one.shape))
        return {"partial": "interrupted" if one.models == ("b",) else None}

    monkeypatch.setattr(run, "run_capacity", fake_capacity)
    results = run.run_each(spec(models=("a", "b", "c"), shape="step"), CapacityGoal(), lambda m: tmp_path / m)
    assert seen == [(("a",), tmp_path / "a", "step"), (("b",), tmp_path / "b", "step")]
    assert list(results) == ["a", "b"] and results["b"]["partial"] == "interrupted"


def test_confirmation_runs_with_the_users_that_measured_the_capacity(monkeypatch) -> None:
    seen: list[LoadSpec] = []

    def fake_load(one: LoadSpec, stack: object = None) -> dict:
        seen.append(one)
        return {"partial": None, "window": {"seconds": 10.0},
                "locust": {"requests": {"m": {"success": 790.0, "failure": 0.0}},
                           "latency_all_s": {"all": {"0.95": 0.04}}}}

    monkeypatch.setattr(run, "run_load", fake_load)
    best = {"users": 6, "rps": 100.0, "latency_s": 0.045, "error_rate": 0.0}
    met = run.confirm(spec(), run.Slo(0.05), best, 80.0, 10)
    assert seen[-1].users == 6 and seen[-1].rate == 80.0 and seen[-1].shape == "constant"
    assert seen[-1].seconds == 10 + run.CONFIRM_WARMUP_S and seen[-1].warmup_s == run.CONFIRM_WARMUP_S
    assert met["met"] and met["measured_rps"] == 79.0 and met["users"] == 6
    assert not run.confirm(spec(), run.Slo(0.035), best, 80.0, 10)["met"]  # p95 40 ms against a 35 ms SLO
    assert not run.confirm(spec(), run.Slo(0.05), best, 90.0, 10)["met"]  # 79/s is under 95% of 90/s


def test_auto_pacing_comes_from_the_manifests_throughput(tmp_path: Path) -> None:
    write(tmp_path, [entry("a", speed={"throughput_b64_ips": 160.0}), entry("b", speed={"throughput_b64_ips": 480.0}),
                     entry("c"), entry("fast", speed={"throughput_b64_ips": 6400.0})])
    auto = LoadSpec(tmp_path, Path("d"), Path("o"), ("a",), shape="step", step=StepPlan(user_rps=run.AUTO_PACE))
    assert run.resolve_pacing(auto).step.user_rps == 10.0  # 160/s over 16 users
    both = replace(auto, models=("a", "b"))
    # taking turns: 2 / (1/160 + 1/480) = 240/s, 15/s per counted user: two real users at 7.5/s each
    assert run.resolve_pacing(both).step.user_rps == 7.5
    assert run.resolve_pacing(replace(auto, step=StepPlan(user_rps=7))).step.user_rps == 7
    fast = run.resolve_pacing(replace(auto, models=("fast",))).step  # 400/s per counted user, SLO 100 ms
    assert fast.user_rps == 10.0, "each real user's interval is at least the SLO latency"
    assert (fast.start_users, fast.step_users, fast.max_users) == (40, 80, 2560), "40 real users per counted one"
    assert fast.spawn_rate == 40 * StepPlan().spawn_rate
    with pytest.raises(ValueError, match="throughput"):
        run.resolve_pacing(replace(auto, models=("c",)))


def test_a_missed_confirmation_backs_off_to_the_next_step_and_the_plan_follows(monkeypatch) -> None:
    from loadtest.analysis.capacity import plan_capacity

    steps = [{"users": u, "rps": r, "latency_ms": 10, "latency_s": {"0.95": 0.010}, "error_rate": 0.0}
             for u, r in ((2, 100.0), (4, 200.0), (6, 300.0))]
    results = {"capacity": plan_capacity(steps, run.Slo(0.05), 1000, 0.2, 1.0, 1)}
    calls: list[tuple[int, float, Path]] = []

    def fake_confirm(spec, slo, best, rate, seconds, stack, out) -> dict:
        calls.append((best["users"], rate, out))
        return {"met": best["users"] < 6, "partial": None}

    monkeypatch.setattr(run, "confirm", fake_confirm)
    attempts = run.confirm_plan(spec(), run.Slo(0.05), CapacityGoal(confirm_seconds=10), results, None)
    out = spec().out
    assert calls == [(6, 240.0, out / "confirm"), (4, 160.0, out / "confirm-2")]
    assert [a["met"] for a in attempts] == [False, True]
    cap = results["capacity"]
    assert cap["max_sustainable"]["users"] == 6, "the curve's maximum is still reported"
    assert cap["planned_from"]["users"] == 4 and cap["plan"]["replica_rps"] == 200.0 and cap["plan"]["replicas"] == 7

    calls.clear()
    results = {"capacity": plan_capacity(steps, run.Slo(0.05), 1000, 0.2, 1.0, 1)}
    monkeypatch.setattr(run, "confirm", lambda *a, **k: calls.append(a) or {"met": False, "partial": None})
    attempts = run.confirm_plan(spec(), run.Slo(0.05), CapacityGoal(confirm_seconds=10, confirm_attempts=2),
                                results, None)
    assert len(attempts) == 2 and results["capacity"]["planned_from"]["users"] == 6, "nothing met: plan unchanged"


def test_locust_is_given_each_models_images_at_its_own_input(monkeypatch, tmp_path: Path) -> None:
    import numpy as np

    from loadtest.protocol.images import load_payloads
    from tests.conftest import MINI_ARCHIVE

    repo = write(tmp_path / "repo", [entry("c_fp32"), entry("g_fp32", dims=(1, 28, 28))])
    commands: list[list[str]] = []
    monkeypatch.setattr(run, "drive_locust", lambda cmd, log, bound: commands.append(cmd) or run.LocustOutcome(0, None))
    monkeypatch.setattr(run, "collect", lambda *a, **k: {"partial": None})
    monkeypatch.setattr(run, "write_results", lambda results, out: None)
    one = LoadSpec(repo, MINI_ARCHIVE, tmp_path / "out", images=6, interval_s=0.01)
    run.run_load(one, run.Stack(ENDS, None, [9000]))
    plan = LoadPlan.read(Path(option(commands[0], "--tz-plan")))
    images = load_payloads(Path(plan.images_file))
    assert {m: a.shape for m, a in images.items()} == {"c_fp32": (6, 3, 32, 32), "g_fp32": (6, 1, 28, 28)}
    assert plan.models == () and images["g_fp32"].dtype == np.uint8
