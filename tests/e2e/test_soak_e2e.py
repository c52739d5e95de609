"""`invoke soak`'s two-minute schedule end to end: two supervised Triton replicas, the gateway, Prometheus, the
paced clients, and every implemented fault once; the report's goals that do not depend on the machine's speed
must be met."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.report.soak import write
from loadtest.soak.run import run_soak
from loadtest.soak.schedule import FAULT_KINDS, load_schedule
from tests.e2e.stack import two_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tool("prometheus")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small real models, the A/B experiment's arms: the soak measures the stack, not a big model."""
    return two_tiny_models(tmp_path_factory.mktemp("soak"))


def test_short_soak_runs_every_fault_and_loses_nothing_it_cannot_account_for(repo: Path, tmp_path: Path) -> None:
    schedule = load_schedule("short")
    assert {f.kind for f in schedule.faults} == set(FAULT_KINDS)  # every implemented fault, once at least
    results = run_soak(repo, [], schedule, tmp_path)
    report = write(results, tmp_path, "pytest tests/e2e/test_soak_e2e.py")
    goals = {g["goal"]: g for g in results["goals"]}
    print(report.read_text())
    s = results["summary"]
    # Machine-independent goals: these must hold on any CI machine, however slow.
    for name in ("every fault ran", "no request lost except those in flight at a kill, each accounted for",
                 "A/B assignment sticky across gateway restarts", "server healthy at the end"):
        assert goals[name]["met"], goals[name]
    assert s["sent"] >= 0.8 * schedule.rate * schedule.duration_s and s["answered"] > 0
    by_kind = {f["kind"]: f for f in results["faults"]}
    assert by_kind["malformed_burst"]["all_400"] and by_kind["bad_experiments_file"]["last_good_held"]
    assert by_kind["bad_experiments_file"]["gateway_saw_bad_file"]
    assert by_kind["publish_version"]["version"] == 2 and by_kind["publish_version"]["ready_on_every_replica"]
    assert not (repo / by_kind["publish_version"]["model"] / "2").exists()  # published into the soak's copy only
    assert by_kind["canary"]["promoted_after_s"] is not None and by_kind["canary"]["failed"] == 0
    bad = by_kind["canary_error_rollback"]
    assert bad["rolled_back_after_s"] is not None and "error rate" in bad["reason"], bad
    baseline = results["run"]["arms"][0]
    assert by_kind["canary"]["rolled_back_to"] == {by_kind["canary"]["candidate"]: 1.0} != {baseline: 1.0}
    assert s["stickiness"]["keys_across_restarts"] > 0
    assert results["restarts"]["gateway_starts"] == 2 and results["restarts"]["triton"] == [2, 0]
    assert [k["fault"].split()[1] for k in s["in_flight"]] == ["triton_kill", "gateway_kill", "triton_kill"]
    # Prometheus may miss what a killed process answered after its last scrape, and nothing else.
    assert results["counts"]["accounted"], results["counts"]
    assert (tmp_path / "soak.html").exists() and (tmp_path / "soak-latency.png").exists()
    side = s["malformed"]["sent"] + s["canary_traffic"]["sent"]
    assert (tmp_path / "requests.csv").read_text().count("\n") == s["sent"] + side + 1
