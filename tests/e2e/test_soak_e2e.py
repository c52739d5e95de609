"""`invoke soak`'s two-minute schedule end to end: two supervised Triton replicas, the gateway, Prometheus, Locust
(the SoakUser, retrying through urllib3), and every implemented fault once; the report's goals that do not depend
on the machine's speed must be met. Then a soak stopped by SIGTERM: a partial report, and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.report.soak import write
from loadtest.soak.run import run_soak
from loadtest.soak.schedule import FAULT_KINDS, load_schedule
from tests.conftest import ROOT
from tests.e2e.stack import two_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tool("prometheus")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small real models, the A/B experiment's arms: the soak measures the stack, not a big model."""
    return two_tiny_models(tmp_path_factory.mktemp("soak"))


def test_short_soak_runs_every_fault_and_loses_nothing_it_cannot_account_for(repo: Path, tmp_path: Path) -> None:
    schedule = load_schedule("short").with_rate(20)  # tiny models have no capacity plan: the rate is given
    assert {f.kind for f in schedule.faults} == set(FAULT_KINDS)  # every implemented fault, once at least
    results = run_soak(repo, [], schedule, tmp_path, rate_source="--rate")
    report = write(results, tmp_path, "pytest tests/e2e/test_soak_e2e.py")
    goals = {g["goal"]: g for g in results["goals"]}
    print(report.read_text())
    s = results["summary"]
    # Machine-independent goals: these must hold on any CI machine, however slow.
    for name in ("every fault ran", "no request lost except those in flight at a kill, each accounted for",
                 "A/B assignment sticky across gateway restarts", "server healthy at the end",
                 "Locust's statistics and its per-request records agree"):
        assert goals[name]["met"], goals[name]
    assert s["sent"] >= 0.8 * schedule.rate * schedule.duration_s and s["answered"] > 0
    # Locust exits 1 when any request failed (its --exit-code-on-error), as one in flight at a kill may
    assert results["locust"]["returncode"] == (1 if s["failed"] else 0), results["locust"]
    assert results["counts"]["locust_stats"]["requests"] == s["sent"]
    assert s["answered_after_retry"] > 0  # the gateway kill's refused connections, retried by urllib3 inside Locust
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
    # Sampled over the load: replica 0's role goes on across its restarts, each with its new pid.
    assert (tmp_path / "soak-resources.png").exists()
    assert len({r["pid"] for r in results["resources"] if r["role"] == "triton-0"}) >= 2
    assert {r["role"] for r in results["resources"]} >= {"gateway", "triton-0", "triton-1", "prometheus"}
    side = s["malformed"]["sent"] + s["canary_traffic"]["sent"]
    assert (tmp_path / "requests.csv").read_text().count("\n") == s["sent"] + side + 1


def test_a_soak_stopped_by_sigterm_writes_a_partial_report_and_leaves_nothing_running(repo: Path,
                                                                                        tmp_path: Path) -> None:
    schedule = tmp_path / "long.json"
    schedule.write_text(json.dumps({"duration_s": 900, "rate": 10, "faults": [
        {"at_s": 1, "kind": "malformed_burst", "count": 6}, {"at_s": 800, "kind": "gateway_kill"}]}))
    out = tmp_path / "out"
    soak = subprocess.Popen([sys.executable, "-m", "invoke", "soak", "--repo", str(repo), "--schedule", str(schedule),
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    records = out / "locust" / "records.jsonl"
    while soak.poll() is None and sum(len(p.read_text().splitlines()) for p in out.glob("locust/records.jsonl.*")) < 20:
        time.sleep(0.5)  # until Locust has answered some requests (a bound on the wait is the test's own timeout)
    assert soak.poll() is None, soak.communicate()[0]
    soak.send_signal(signal.SIGTERM)
    output = soak.communicate(timeout=300)[0]
    assert soak.returncode == 1 and "soak interrupted after" in output, output
    results = json.loads((out / "soak.json").read_text())
    cut = results["interrupted"]
    assert 0 < cut["reached_s"] < 900 and {"at_s": 800, "kind": "gateway_kill", "cut_short": False} in cut["not_run"]
    assert results["summary"]["sent"] >= 20 and results["counts"]["records_match_stats"], results["counts"]
    assert "## PARTIAL: interrupted" in (out / "soak.md").read_text()
    assert results["resources"]  # the samples taken until the cut
    assert records.parent.is_dir() and not running_under(tmp_path)  # Tritons, gateway and Locust name the folder
    # ... and Prometheus (a temporary folder of its own) is among the processes measured at the start
    assert all(not alive(u["start"]["pid"]) for u in results["usage"] if u["start"].get("pid") != soak.pid)


def running_under(folder: Path) -> list[str]:
    """Command lines of live processes that name `folder` (every process the soak starts names its own folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and str(folder) in cmdline:
            found.append(cmdline)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
