"""Load tests end to end: real Triton (and gateway), real Prometheus, real Locust; figures read back with PromQL."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from loadtest.analysis.shapes import StepPlan
from loadtest.metrics.prometheus import PrometheusServer
from loadtest.metrics.promql import Window
from loadtest.protocol.images import load_test_images, save_images
from loadtest.report.run import write
from loadtest.runs.collect import collect
from loadtest.runs.drive import drive_locust, load_plan, locust_command, run_window
from loadtest.runs.run import run_capacity, run_load
from loadtest.runs.spec import CapacityGoal, LoadSpec
from loadtest.runs.stack import Endpoints
from serving.triton import TritonConfig, TritonServer, free_ports
from tests.conftest import CIFAR, MINI_ARCHIVE
from tests.e2e.stack import two_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tool("prometheus")]
MODELS = ("tiny_fp32", "tinyb_fp32")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small real models: fast enough that the load generator, not the model, is what a short run measures."""
    return two_tiny_models(tmp_path_factory.mktemp("loadtest"))


def spec(repo: Path, out: Path, **kw) -> LoadSpec:
    return LoadSpec(repo, MINI_ARCHIVE, out, images=100, interval_s=0.5, **kw)


def locust_csv_totals(out: Path) -> tuple[int, int]:
    """Locust's own count of requests and failures (its stats CSV), to check the exported figures against."""
    with open(out / "locust_stats.csv") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return int(total["Request Count"]), int(total["Failure Count"])


def test_grpc_step_load_side_by_side_with_two_locust_processes(repo: Path, tmp_path: Path) -> None:
    step = StepPlan(start_users=2, step_users=2, step_seconds=2, slo_ms=10_000, max_error_rate=0.0)
    s = spec(repo, tmp_path, models=MODELS, target="grpc", seconds=7, processes=2, step=step)
    results = run_capacity(s, CapacityGoal(target_rps=1000, headroom=0.2, price_per_instance_hour=1.0))
    assert results["partial"] is None and results["locust_returncode"] == 0
    steps = results["steps"]["steps"]
    assert len(steps) >= 2 and [st["users"] for st in steps[:2]] == [2, 4]
    assert all(st["failures"] == 0 and st["latency_s"]["0.95"] > 0 for st in steps)  # sub-ms quantiles from PromQL
    cap = results["capacity"]
    assert len(cap["curve"]) == len(steps) and cap["max_sustainable"] is not None
    assert cap["plan"]["replicas"] >= 1 and cap["plan"]["instances_per_replica"] == 2
    locust, triton = results["locust"]["requests"], results["triton"]
    for model in MODELS:
        assert triton[model]["rps"] > 0 and triton[model]["failures"] == 0
        assert locust[model] == {"success": triton[model]["requests"], "failure": 0.0}  # every request, once
        assert triton[model]["avg_batch_size"] >= 1.0 and triton[model]["mean_us"]["queue"] is not None
        q = results["locust"]["latency_s"][model]
        assert 0 < q["0.5"] <= q["0.95"] <= q["0.99"]
    # Not compared with Locust's own CSV here: with --processes, its master quits before the workers' last stats
    # reports arrive, so its summary can miss the final second. The exporter runs in the workers and misses nothing.
    assert sum(c["success"] for c in locust.values()) >= locust_csv_totals(tmp_path)[0]
    assert any(p[1] for s in results["series"]["triton_inferences_per_s"] for p in s["points"])
    assert write(tmp_path / "loadtest.json").read_text().startswith("# Load test: grpc")


def test_failed_requests_are_counted_never_dropped(repo: Path, tmp_path: Path) -> None:
    """Triton serves only the first model: every request to the second fails, and must show as a failure."""
    s = spec(repo, tmp_path, models=MODELS, target="http", users=2, seconds=5, max_requests=1500)
    cfg = TritonConfig.on_free_ports(repo, model_control="explicit", extra_args=(f"--load-model={MODELS[0]}",))
    prom_port, exporter = free_ports(2)
    with TritonServer(cfg, tmp_path / "triton.log"):
        targets = {"triton": [f"127.0.0.1:{cfg.metrics_port}"], "locust": [f"127.0.0.1:{exporter}"]}
        with PrometheusServer(targets, prom_port, s.interval_s) as prom:
            prom.client.wait_for_targets({"triton"})
            images = save_images(load_test_images(MINI_ARCHIVE, 100, CIFAR), tmp_path / "images.npy")
            ends = Endpoints(cfg.http_url, cfg.grpc_url, f"127.0.0.1:{cfg.metrics_port}")
            plan = load_plan(s, ends, images, [exporter]).write(tmp_path / "locust-plan.json")
            outcome = drive_locust(locust_command(s, ends, plan), tmp_path / "locust.log", s.seconds)
            exited = time.time()
            window = run_window(tmp_path, Window(0, 0))
            time.sleep(2 * s.interval_s)
            results = collect(prom.client, s, window, outcome, exited)
    served, missing = results["locust"]["requests"][MODELS[0]], results["locust"]["requests"][MODELS[1]]
    assert missing["success"] == 0 and missing["failure"] > 0
    assert served["failure"] == 0 and served["success"] == results["triton"][MODELS[0]]["requests"]
    requests, failures = locust_csv_totals(tmp_path)
    assert failures == missing["failure"] and requests == served["success"] + missing["failure"]
    assert results["locust"]["latency_all_s"]["all"]["0.5"] is not None  # failures are in the latency figures too


def test_ab_experiment_through_the_gateway(repo: Path, tmp_path: Path) -> None:
    # Each user keeps one sticky key on an equal split: with 4 users one arm got none 1 run in 8; with 16,
    # 1 in 32,768.
    results = run_load(spec(repo, tmp_path, models=MODELS, target="experiment", users=16, seconds=5))
    assert results["partial"] is None
    gateway, locust = results["gateway"], results["locust"]["requests"]
    for model in MODELS:
        answered = gateway[f"ab/{model}"]["codes"]
        assert answered.get("200", 0) > 0 and set(answered) == {"200"}
        # Locust names each request by the arm the gateway chose: its count is the gateway's for that arm
        assert locust[f"ab:{model}"]["success"] == answered["200"]
        assert locust[f"ab:{model}"]["success"] == results["triton"][model]["requests"]


def test_paced_http_run_leaves_its_warm_up_out_of_every_figure(repo: Path, tmp_path: Path) -> None:
    s = spec(repo, tmp_path, models=(MODELS[0],), target="http", users=4, rate=100, seconds=6, warmup_s=2)
    results = run_load(s)
    assert results["partial"] is None and results["locust_returncode"] == 0
    locust, triton = results["locust"]["requests"][MODELS[0]], results["triton"][MODELS[0]]
    # The cut after the warm-up is a Locust scrape; Triton's counter is read at its own scrape, up to one interval
    # away, and on a loaded machine scrapes run late and requests in flight straddle the cut. So the counts may
    # differ by two intervals' traffic, no more (a leaked warm-up would add 2 s of it).
    assert locust["failure"] == 0 and abs(locust["success"] - triton["requests"]) <= 2 * s.rate * s.interval_s
    assert locust_csv_totals(tmp_path)[0] > locust["success"] > 0  # Locust's own total includes the warm-up
    assert results["window"]["seconds"] < s.seconds
    buckets = results["locust"]["latency_buckets"][MODELS[0]]
    assert buckets["count"] == locust["success"] and buckets["buckets"][-1][1] == locust["success"]
