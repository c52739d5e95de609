from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from prometheus_client import start_http_server
from tritonclient.grpc import model_config_pb2 as pb

from loadtest.bench import headroom
from loadtest.bench.cpu_tax import SLICE_S, burn
from loadtest.bench.headroom import (
    TAXED,
    HeadroomPlan,
    Sample,
    Snapshot,
    generator,
    generator_command,
    group_cpu_seconds,
    make_target,
    parse_wrk,
    proc_stat_fields,
    publish_trivial,
    summarize,
    tax_cores,
    verdict,
    window_sample,
    within_10pct,
)
from loadtest.locust.exporter import LoadMetrics
from loadtest.protocol.payloads import ModelIO, triton_http
from loadtest.protocol.rawhttp import HttpStatusError, RawConnection, parse_head
from loadtest.report import headroom as report
from loadtest.report.headroom import markdown
from loadtest.runs.plan import LoadPlan
from serving.triton import free_ports
from tests.conftest import CIFAR, present
from tests.serving.manifests import entry, write

IMAGE = np.arange(3 * 32 * 32, dtype=np.uint8).reshape(3, 32, 32)


def test_trivial_model_runs_in_onnxruntime_and_its_config_is_the_zoo_shape(tmp_path: Path) -> None:
    repo = publish_trivial(tmp_path / "repo", CIFAR)
    session = ort.InferenceSession(str(repo / "trivial" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"images": np.stack([IMAGE, IMAGE])})[0]
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    cfg = text_format.Parse((repo / "trivial" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 64 and cfg.HasField("dynamic_batching")
    assert cfg.input[0].data_type == pb.TYPE_UINT8 and list(cfg.input[0].dims) == [3, 32, 32]


def test_every_generator_sends_the_same_bytes(tmp_path: Path) -> None:
    target = make_target("127.0.0.1:8000", "trivial", IMAGE, tmp_path)
    request = triton_http(ModelIO("trivial"), IMAGE[None], "127.0.0.1:8000")[0]  # the project's Locust user
    assert (tmp_path / "body.bin").read_bytes() == target.body
    assert request.startswith(b"POST /v2/models/trivial/infer HTTP/1.1\r\n") and request.endswith(target.body)
    assert f"Inference-Header-Content-Length: {target.headers['Inference-Header-Content-Length']}".encode() in request
    lua = (tmp_path / "wrk.lua").read_text()
    assert 'wrk.method = "POST"' in lua and "Inference-Header-Content-Length" in lua and str(tmp_path) in lua
    assert np.load(tmp_path / "images.npy").shape == (1, 3, 32, 32)


def test_generator_commands(tmp_path: Path) -> None:
    target = make_target("127.0.0.1:8000", "m", IMAGE, tmp_path, repo=Path("repo"))
    wrk = generator_command(generator("wrk"), target, 8, 40.2, [])
    assert wrk[1:4] == ["-t1", "-c8", "-d41s"] and wrk[-1] == "http://127.0.0.1:8000/v2/models/m/infer"
    project = generator_command(generator("locust-2p"), target, 8, 40, [9001, 9002])
    assert "TritonHttpUser" in project and project[project.index("--processes") + 1] == "2"
    plan = LoadPlan.read(Path(project[project.index("--tz-plan") + 1]))
    assert plan.repo == "repo" and plan.exporter_ports == (9001, 9002) and project[project.index("-u") + 1] == "8"
    single = generator_command(generator("locust-1p"), target, 4, 40, [9001])
    assert "--processes" not in single
    assert LoadPlan.read(Path(single[single.index("--tz-plan") + 1])) == LoadPlan(
        models=("m",), repo="repo", images_file=str(tmp_path / "images.npy"), images=1, exporter_ports=(9001,),
        linger_s=0.0)


def test_wrk_summary_line_is_parsed() -> None:
    out = 'Running 5s test\n...\nTZ_WRK {"requests": 100, "duration_us": 5000000, "connect": 0, "read": 1, ' \
          '"write": 0, "status": 3, "timeout": 0, "p50_us": 500, "p99_us": 900}\n'
    summary = present(parse_wrk(out))
    assert summary["requests"] == 100 and summary["non_2xx"] == 3 and summary["read"] == 1
    assert parse_wrk("no summary") is None


def test_proc_stat_and_group_cpu() -> None:
    fields = proc_stat_fields("42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0")
    assert fields[0] == "S" and fields[2] == "42" and fields[11:13] == ["7", "3"]
    import os

    assert group_cpu_seconds(os.getpgid(0)) > 0  # this test process's own group has spent CPU


def snap(at: float, success: int, triton: float, gen: float, busy: float, client: dict | None = None) -> Snapshot:
    return Snapshot(at, {"success": success, "failure": 0, "inferences": success, "executions": success // 2},
                    triton, gen, (busy, 0.0), client)


def sample(name: str, round_: int, rps: float, triton_us: float, gen_us: float, busy: float = 1.95) -> Sample:
    a = snap(0.0, 0, 0.0, 0.0, 0.0, None if name == "wrk" else {"success": 0.0, "failure": 0.0})
    b = snap(1.0, int(rps), rps * triton_us / 1e6, rps * gen_us / 1e6, busy,
             None if name == "wrk" else {"success": rps, "failure": 0.0})
    s = window_sample(generator(name), round_, a, b)
    if name == "wrk":
        s.wrk = {"requests": 1, "non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0}
    return s


def test_window_sample_counts_rates_and_cpu() -> None:
    s = sample("locust-1p", 0, 1000, 100, 300)
    assert s.rps == 1000 and s.avg_batch == 2.0 and s.client == {"success": 1000.0, "failure": 0.0}
    assert s.us_per_request["triton"] == pytest.approx(100) and s.cores["generator"] == pytest.approx(0.3)
    assert s.cores["other"] == pytest.approx(1.95 - 0.1 - 0.3)


def test_summary_ratios_and_the_shared_cpu_verdict() -> None:
    samples = [sample("wrk", r, 10000, 100, 25) for r in range(3)]
    samples += [sample("locust-1p", r, 5000 + r, 100, 300) for r in range(3)]
    summary = summarize(samples, cpu_count=2)
    assert summary["wrk"]["vs_wrk"] == 1.0 and summary["locust-1p"]["vs_wrk"] == pytest.approx(0.5001)
    assert summary["locust-1p"]["shared_cpu_ceiling_rps"] == pytest.approx(2e6 / 400)
    assert summary["wrk"]["client_failures"] == 0 and summary["locust-1p"]["client_failures"] == 0
    v = verdict(summary, cpu_count=2)
    assert v["best"] == "locust-1p" and not v["met"] and v["cpu_bound"]
    assert v["measured_over_ceiling"] == pytest.approx(5001 / 5000)
    text = markdown({"plan": vars(HeadroomPlan()), "cpu_count": 2, "partial": "interrupted",
                     "trivial": {"summary": summary, "verdict": v}})
    assert "PARTIAL" in text and "| locust-1p | 5001 | 0.50x |" in text and "the CPU they share" in text


def test_missing_wrk_summary_is_unknown_not_zero() -> None:
    s = sample("wrk", 0, 10000, 100, 25)
    s.wrk = None
    assert summarize([s], 2)["wrk"]["client_failures"] is None


def test_plan_needs_wrk_and_known_generators() -> None:
    with pytest.raises(ValueError, match="unknown generator"):
        HeadroomPlan(generators=("wrk", "ab")).validate()
    with pytest.raises(ValueError, match="unknown generator"):
        HeadroomPlan(generators=("wrk", "locust-0p")).validate()
    with pytest.raises(ValueError, match="unknown generator"):
        generator("lean-1p")
    assert generator("locust-3p").processes == 3 and generator("locust-1p").kind == "locust"
    with pytest.raises(ValueError, match="baseline"):
        HeadroomPlan(generators=("locust-1p",)).validate()
    with pytest.raises(ValueError, match="niceness"):
        HeadroomPlan(nice=20).validate()
    text = markdown({"plan": vars(HeadroomPlan(nice=10)), "cpu_count": 2, "partial": None})
    assert "niceness 10, so Triton had the CPU first" in text


def test_parse_head() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\ncontent-length: 42") == (200, 42)
    with pytest.raises(ValueError):
        parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")


def serve_responses(responses: list[bytes]) -> int:
    """A one-connection HTTP server on loopback answering each request (read up to its body) with the next reply."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            for reply in responses:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def test_raw_connection_reads_split_responses_and_fails_non_200() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad"
    port = serve_responses([ok, bad])
    conn = RawConnection("127.0.0.1", port, 5)
    try:
        assert conn.exchange(b"GET / HTTP/1.1\r\n\r\n") == 5
        with pytest.raises(HttpStatusError, match="HTTP 400"):
            conn.exchange(b"GET / HTTP/1.1\r\n\r\n")
        assert conn.buffer == b""
    finally:
        conn.close()


def test_exporter_counts_read_every_process_and_skip_unused_ports() -> None:
    from loadtest.bench.headroom import exporter_counts

    metrics = LoadMetrics()
    metrics.on_request("POST", "m", 1.0)
    metrics.on_request("POST", "m", 1.0, exception=RuntimeError("x"))
    used, unused = free_ports(2)
    start_http_server(used, addr="127.0.0.1", registry=metrics.registry)
    assert exporter_counts([used, unused]) == {"success": 1.0, "failure": 1.0}


def test_taxed_wrk_runs_wrk_and_the_tax_in_one_process_group(tmp_path: Path) -> None:
    target = make_target("127.0.0.1:8000", "m", IMAGE, tmp_path)
    taxed = generator(TAXED)
    assert taxed.kind == "wrk" and taxed.tax and not generator("wrk").tax
    command = generator_command(taxed, target, 8, 40.2, [], tax_cores=0.125)
    assert command[:2] == ["sh", "-c"] and command[3] == "sh"  # "$@" is wrk's own command line
    assert "-m loadtest.bench.cpu_tax --cores 0.125 --seconds 41 &" in command[2] and command[2].endswith('exec "$@"')
    assert command[4:] == generator_command(generator("wrk"), target, 8, 40.2, [])


def test_the_tax_is_what_the_rounds_locust_spent_above_wrk() -> None:
    round_ = [sample("wrk", 0, 1000, 100, 20), sample("locust-1p", 0, 900, 100, 200)]
    assert tax_cores(round_) == pytest.approx(0.9 * 200 / 1e6 * 1e3 - 1000 * 20 / 1e6)
    assert tax_cores([sample("wrk", 0, 1000, 100, 300), sample("locust-1p", 0, 900, 100, 200)]) == 0.0
    with pytest.raises(ValueError, match="list wrk and a locust"):
        HeadroomPlan(variant_generators=("wrk", TAXED, "locust-1p")).validate()
    with pytest.raises(ValueError, match="list wrk and a locust"):
        HeadroomPlan(variant_generators=("locust-1p", TAXED, "wrk")).validate()
    HeadroomPlan().validate()


def test_locust_is_compared_with_wrk_and_with_the_taxed_control() -> None:
    samples = []
    for r in range(3):
        samples += [sample("wrk", r, 1000, 800, 20), sample("locust-1p", r, 850, 800, 120),
                    sample(TAXED, r, 870, 800, 120)]
    summary = summarize(samples, cpu_count=2)
    assert summary["locust-1p"]["vs_wrk"] == pytest.approx(0.85)
    assert summary["locust-1p"]["vs_taxed"] == pytest.approx(850 / 870)
    assert within_10pct(summary) == {"within_10pct": {"locust-1p": False}, "within_10pct_taxed": {"locust-1p": True}}
    assert verdict(summary, 2)["best"] == "locust-1p"  # the control is not a Locust configuration
    text = markdown({"plan": vars(HeadroomPlan()), "cpu_count": 2, "partial": None,
                     "variants": {"m": {"summary": summary, **within_10pct(summary)}}})
    assert "within 10% of wrk: **0 of 1**; within 10% of wrk+tax: **1 of 1**" in text
    assert "| m | locust-1p | 1000 | 850 | 0.85x | 0.98x |" in text
    assert "locust-1p: NOT within 10% of wrk; locust-1p: within 10% of wrk+tax" in text


def test_cpu_tax_never_spends_more_than_its_share() -> None:
    import time

    wall = time.monotonic()
    spent = burn(0.25, 0.3)
    assert 0 < spent <= 0.25 * (time.monotonic() - wall) + SLICE_S + 0.005


@pytest.mark.parametrize("dims", [(1, 28, 28), (3, 48, 40)])
def test_the_trivial_model_takes_the_input_it_stands_in_for(tmp_path: Path, dims: tuple[int, int, int]) -> None:
    repo = publish_trivial(tmp_path / "repo", dims)
    session = ort.InferenceSession(str(repo / "trivial" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).integers(0, 256, (3, *dims), dtype=np.uint8)
    assert session.run(["logits"], {"images": batch})[0].shape == (3, 10)
    cfg = text_format.Parse((repo / "trivial" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert list(cfg.input[0].dims) == list(dims)


def test_variants_are_sent_their_own_image_and_the_trivial_model_takes_the_firsts(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    repo = write(tmp_path / "repo", [entry("g_fp32", dims=(1, 28, 28)), entry("w_fp32", dims=(3, 48, 48)),
                                     entry("c_fp32")])
    seen: dict[str, object] = {}

    def fake_trivial(image, plan, work, out) -> None:
        seen["trivial"] = image
        out.update(model="trivial", input_dims=list(image.shape), summary={}, verdict={})

    monkeypatch.setattr(headroom, "_wrk", lambda: "wrk")
    monkeypatch.setattr(headroom, "trivial_headroom", fake_trivial)
    monkeypatch.setattr(headroom, "variant_headroom", lambda r, models, images, *a: seen.update(variants=images))
    own = np.full((4, 1, 28, 28), 200, np.uint8)
    md = report.write(headroom.run_headroom(IMAGE, HeadroomPlan(), tmp_path / "out", repo,
                                            ["g_fp32", "w_fp32", "c_fp32"], payloads={"g_fp32": own}))
    variants = seen["variants"]
    assert isinstance(variants, dict)
    assert np.array_equal(variants["g_fp32"], own[0]), "its own payload"
    assert variants["w_fp32"].shape == (3, 48, 48) and np.array_equal(variants["c_fp32"], IMAGE), "the image, fitted"
    assert seen["trivial"] is variants["g_fp32"], "the trivial model stands in for the first variant"
    assert "Input 1x28x28 uint8" in md.read_text()
