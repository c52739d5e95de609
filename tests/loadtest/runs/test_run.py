from __future__ import annotations

from pathlib import Path

from loadtest.analysis.capacity import Slo
from loadtest.metrics.prometheus import PromClient
from loadtest.runs import run
from loadtest.runs.drive import LocustOutcome
from loadtest.runs.plan import LoadPlan
from loadtest.runs.spec import CONFIRM_WARMUP_S, CapacityGoal, LoadSpec
from loadtest.runs.stack import Endpoints, Stack
from tests.conftest import unused
from tests.serving.manifests import entry, write

ENDS = Endpoints("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")


def spec(**kw) -> LoadSpec:
    return LoadSpec(Path("repo"), Path("data.tar.gz"), Path("out"), **kw)


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


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
    met = run.confirm(spec(), Slo(0.05), best, 80.0, 10)
    assert seen[-1].users == 6 and seen[-1].rate == 80.0 and seen[-1].shape == "constant"
    assert seen[-1].seconds == 10 + CONFIRM_WARMUP_S and seen[-1].warmup_s == CONFIRM_WARMUP_S
    assert met["met"] and met["measured_rps"] == 79.0 and met["users"] == 6
    assert not run.confirm(spec(), Slo(0.035), best, 80.0, 10)["met"]  # p95 40 ms against a 35 ms SLO
    assert not run.confirm(spec(), Slo(0.05), best, 90.0, 10)["met"]  # 79/s is under 95% of 90/s


def test_a_missed_confirmation_backs_off_to_the_next_step_and_the_plan_follows(monkeypatch) -> None:
    from loadtest.analysis.capacity import plan_capacity

    steps = [{"users": u, "rps": r, "latency_ms": 10, "latency_s": {"0.95": 0.010}, "error_rate": 0.0}
             for u, r in ((2, 100.0), (4, 200.0), (6, 300.0))]
    results = {"capacity": plan_capacity(steps, Slo(0.05), 1000, 0.2, 1.0, 1)}
    calls: list[tuple[int, float, Path]] = []

    def fake_confirm(spec, slo, best, rate, seconds, stack, out) -> dict:
        calls.append((best["users"], rate, out))
        return {"met": best["users"] < 6, "partial": None}

    monkeypatch.setattr(run, "confirm", fake_confirm)
    attempts = run.confirm_plan(spec(), Slo(0.05), CapacityGoal(confirm_seconds=10), results, unused(Stack))
    out = spec().out
    assert calls == [(6, 240.0, out / "confirm"), (4, 160.0, out / "confirm-2")]
    assert [a["met"] for a in attempts] == [False, True]
    cap = results["capacity"]
    assert cap["max_sustainable"]["users"] == 6, "the curve's maximum is still reported"
    assert cap["planned_from"]["users"] == 4 and cap["plan"]["replica_rps"] == 200.0 and cap["plan"]["replicas"] == 7

    calls.clear()
    results = {"capacity": plan_capacity(steps, Slo(0.05), 1000, 0.2, 1.0, 1)}

    def missed(spec: LoadSpec, slo: Slo, best: dict, rate: float, seconds: float, stack: Stack, out: Path) -> dict:
        calls.append((best["users"], rate, out))
        return {"met": False, "partial": None}

    monkeypatch.setattr(run, "confirm", missed)
    attempts = run.confirm_plan(spec(), Slo(0.05), CapacityGoal(confirm_seconds=10, confirm_attempts=2),
                                results, unused(Stack))
    assert len(attempts) == 2 and results["capacity"]["planned_from"]["users"] == 6, "nothing met: plan unchanged"


def test_locust_is_given_each_models_images_at_its_own_input(monkeypatch, tmp_path: Path) -> None:
    import numpy as np

    from loadtest.protocol.images import load_payloads
    from tests.conftest import MINI_ARCHIVE

    repo = write(tmp_path / "repo", [entry("c_fp32"), entry("g_fp32", dims=(1, 28, 28))])
    commands: list[list[str]] = []

    def drive_locust(cmd: list[str], log: Path, bound: float) -> LocustOutcome:
        commands.append(cmd)
        return LocustOutcome(0, None)

    monkeypatch.setattr(run, "drive_locust", drive_locust)
    monkeypatch.setattr(run, "collect", lambda *a, **k: {"partial": None})
    monkeypatch.setattr(run, "write_results", lambda results, out: None)
    one = LoadSpec(repo, MINI_ARCHIVE, tmp_path / "out", images=6, interval_s=0.01)
    run.run_load(one, Stack(ENDS, unused(PromClient), [9000]))
    plan = LoadPlan.read(Path(option(commands[0], "--tz-plan")))
    images = load_payloads(Path(plan.images_file))
    assert isinstance(images, dict)
    assert {m: a.shape for m, a in images.items()} == {"c_fp32": (6, 3, 32, 32), "g_fp32": (6, 1, 28, 28)}
    assert plan.models == () and images["g_fp32"].dtype == np.uint8
