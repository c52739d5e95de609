from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from loadtest.bench.closed_loop import LoopResult, closed_loop
from loadtest.bench.config_search import (
    SearchPlan,
    Trial,
    apply_trial,
    choose,
    current_trial,
    failed_trial,
    figures,
    median_rows,
    meets_slo,
    read_config,
    trial_repository,
    write_config_atomically,
    write_winner,
)
from loadtest.bench.headroom import trivial_config
from loadtest.report.config_search import markdown
from serving.manifest import read_manifest
from serving.publication import Publication
from tests.conftest import CIFAR

CONFIG = """name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 64
input { name: "images" data_type: TYPE_UINT8 format: FORMAT_NCHW dims: [3, 32, 32] }
output { name: "logits" data_type: TYPE_FP32 dims: [10] label_filename: "labels.txt" }
instance_group { count: 1 kind: KIND_CPU }
dynamic_batching { max_queue_delay_microseconds: 200 preferred_batch_size: [16, 64] }
parameters { key: "intra_op_thread_count" value { string_value: "2" } }
"""


def test_grid_holds_every_combination() -> None:
    plan = SearchPlan(max_batch_sizes=(8, 32, 64), delays_us=(0, 500, 2000), instances=(1, 2))
    assert len(plan.trials()) == 18 and Trial(32, 500, 2) in plan.trials()
    with pytest.raises(ValueError):
        SearchPlan(instances=(0,)).validate()


def test_apply_trial_changes_only_the_searched_fields() -> None:
    cfg = text_format.Parse(CONFIG, pb.ModelConfig())
    assert current_trial(cfg) == Trial(64, 200, 1)
    new = apply_trial(cfg, Trial(8, 2000, 2))
    assert (new.max_batch_size, new.dynamic_batching.max_queue_delay_microseconds, new.instance_group[0].count) == \
        (8, 2000, 2)
    assert list(new.dynamic_batching.preferred_batch_size) == []  # 16 and 64 no longer fit under 8
    back = apply_trial(new, Trial(64, 200, 1))
    back.dynamic_batching.preferred_batch_size.extend([16, 64])
    assert back == cfg  # everything else untouched: labels, parameters, format, kind
    assert current_trial(cfg) == Trial(64, 200, 1)  # the original is not modified


def test_models_without_batching_or_with_several_groups_are_refused() -> None:
    cfg = text_format.Parse(CONFIG, pb.ModelConfig())
    cfg.max_batch_size = 0
    with pytest.raises(ValueError, match="batch"):
        apply_trial(cfg, Trial(8, 0, 1))
    cfg = text_format.Parse(CONFIG, pb.ModelConfig())
    cfg.instance_group.add(count=1)
    with pytest.raises(ValueError, match="instance groups"):
        apply_trial(cfg, Trial(8, 0, 1))


def test_atomic_write_replaces_the_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_text(CONFIG)
    path.chmod(0o640)
    write_config_atomically(path, apply_trial(read_config(path), Trial(32, 500, 2)))
    assert current_trial(read_config(path)) == Trial(32, 500, 2) and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.pbtxt"]


def test_trial_repository_is_a_copy(tmp_path: Path) -> None:
    (tmp_path / "repo" / "m" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "m" / "config.pbtxt").write_text(trivial_config("m", CIFAR))
    (tmp_path / "repo" / "m" / "1" / "model.onnx").write_bytes(b"x")
    (tmp_path / "repo" / "other").mkdir()
    root = trial_repository(tmp_path / "repo", "m", tmp_path / "trial")
    (root / "m" / "config.pbtxt").write_text("changed")
    assert (tmp_path / "repo" / "m" / "config.pbtxt").read_text() == trivial_config("m", CIFAR)
    assert sorted(p.name for p in root.iterdir()) == ["m"] and (root / "m" / "1" / "model.onnx").exists()


def row(rps: float, p95: float, errors: float = 0.0) -> dict:
    return {"rps": rps, "slo_latency_ms": p95, "p95_ms": p95, "error_rate": errors}


def test_choose_best_within_slo_with_a_margin_over_the_current() -> None:
    plan = SearchPlan(slo_ms=50, min_gain=0.05)
    cur = Trial(64, 200, 1)
    rows = {cur: row(100, 40), Trial(8, 0, 1): row(104, 30), Trial(64, 2000, 2): row(300, 80)}
    assert choose(rows, cur, plan)[0] == cur  # 4% better is within the margin; the fastest misses the SLO
    rows[Trial(32, 0, 2)] = row(120, 45)
    assert choose(rows, cur, plan)[0] == Trial(32, 0, 2)
    rows[cur] = row(100, 90)  # the current config misses the SLO: any feasible winner is written
    rows.pop(Trial(32, 0, 2))
    assert choose(rows, cur, plan)[0] == Trial(8, 0, 1)
    assert choose({cur: row(100, 90, 0.5)}, cur, plan)[0] is None
    assert not meets_slo(row(500, 10, 0.02), plan)  # errors break the SLO too
    failed = failed_trial("HTTP 400: out of memory")
    assert not meets_slo(failed, plan) and failed["rps"] == 0.0 and failed["p95_ms"] is None
    assert median_rows([{cur: failed}])[cur]["load_error"] == "HTTP 400: out of memory"


def test_figures_count_failures_and_median_rows_sum_them() -> None:
    f = figures(LoopResult(10, 2, 2.0, [1.0] * 9 + [100.0]), (20, 5), 0.95)
    assert f["rps"] == 4.0 and f["error_rate"] == 0.2 and f["avg_batch"] == 4.0 and f["p50_ms"] == 1.0
    assert f["slo_latency_ms"] == pytest.approx(55.45)
    g = figures(LoopResult(10, 0, 1.0, [2.0] * 10), None, 0.95)
    t = Trial(8, 0, 1)
    rows = median_rows([{t: f}, {t: g}, {t: g}])
    assert rows[t]["failures"] == 2 and rows[t]["requests"] == 30 and rows[t]["rps"] == 10.0
    assert rows[t]["avg_batch"] == 4.0 and rows[t]["rounds_rps"] == [4.0, 10.0, 10.0]


class Flaky(BaseHTTPRequestHandler):
    """Every third request fails with 500: the closed loop must count them, not stop."""

    count = 0
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        Flaky.count += 1
        status = 500 if Flaky.count % 3 == 0 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def test_closed_loop_counts_failures_and_times_every_request() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = asyncio.run(closed_loop(f"127.0.0.1:{server.server_port}", "/x", [(b"abc", {})], 2, 0.3))
    finally:
        server.shutdown()
    assert result.requests > 3 and result.failures == pytest.approx(result.requests / 3, abs=2)
    assert len(result.latencies_ms) == result.requests


def test_markdown_marks_current_and_chosen() -> None:
    plan = SearchPlan()
    trials = [{"max_batch_size": 64, "max_queue_delay_us": 200, "instances": 1, **row(100, 40), "p50_ms": 5,
               "p99_ms": 60, "avg_batch": 2.0, "failures": 0, "meets_slo": True},
              {"max_batch_size": 8, "max_queue_delay_us": 0, "instances": 2, **row(150, 40), "p50_ms": 5,
               "p99_ms": 60, "avg_batch": None, "failures": 1, "meets_slo": True}]
    text = markdown({"model": "m", "repo": "r", "plan": vars(plan), "current": vars(Trial(64, 200, 1)),
                     "chosen": vars(Trial(8, 0, 2)), "decision": "best", "written": True,
                     "manifest_max_batch_size": 64, "trials": trials})
    assert "| 64 | 200 | 1 | 100.0 |" in text and "current" in text and "**chosen**" in text
    assert "max_batch_size (64) was updated in the same commit" in text and "Written to r/m/config.pbtxt: yes" in text


def published(repo: Path) -> None:
    with Publication(repo) as pub:
        folder = pub.stage("m")
        (folder / "1").mkdir()
        (folder / "config.pbtxt").write_text(CONFIG)
        pub.record("m", {"model": "m", "family": "f", "variant": "fp32", "runtime": "onnxruntime", "version": 1,
                         "io": {"input": "images", "input_dims": [3, 32, 32], "output": "logits"},
                         "accuracy": {"top1": 0.5}, "max_batch_size": 64})


def test_the_winner_is_written_through_the_publication_with_its_manifest_entry(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    published(repo)
    assert write_winner(repo, "m", Trial(8, 2000, 2), "best") == (True, "best")
    assert current_trial(read_config(repo / "m" / "config.pbtxt")) == Trial(8, 2000, 2)
    assert read_manifest(repo).models["m"].max_batch_size == 8, "the manifest follows in the same commit"
    with Publication(repo):  # a build holds the repository: nothing is written, and the search says why
        written, why = write_winner(repo, "m", Trial(64, 0, 1), "best")
    assert not written and "not written: another build is publishing" in why
    assert current_trial(read_config(repo / "m" / "config.pbtxt")) == Trial(8, 2000, 2)


def test_an_interrupted_round_keeps_the_trials_it_measured() -> None:
    a, b = Trial(8, 0, 1), Trial(64, 0, 1)
    f = figures(LoopResult(10, 0, 1.0, [2.0] * 10), None, 0.95)
    rows = median_rows([{a: f, b: f}, {a: {**f, "rps": 20.0}}])
    assert rows[a]["rounds_rps"] == [10.0, 20.0] and rows[b]["rounds_rps"] == [10.0]
    assert median_rows([]) == {}
