from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from build.data import ImageSet
from build.measure import SpeedPlan, compressed_mb, measure_speeds, onnx_accuracy, peak_memory_mb
from build.repository.model_config import build_config, model_io, to_pbtxt
from build.runtimes.onnxruntime import OnnxRuntime


def test_speeds_are_measured_interleaved_and_rank_models_correctly(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    clock = [0.0]  # a fake clock that only the models advance: the figures are exact, whatever the machine's load
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def runner(name: str, seconds_per_image: float):
        def run(images: np.ndarray) -> np.ndarray:
            calls.append(name)
            clock[0] += seconds_per_image * len(images)
            return np.zeros((len(images), 10), np.float32)
        return run

    images = np.zeros((64, 3, 32, 32), np.uint8)
    plan = SpeedPlan(rounds=2, latency_iters=3, throughput_batches=1, warmup=1)
    speeds = measure_speeds({"slow": runner("slow", 2e-4), "fast": runner("fast", 5e-5)}, images, plan)
    assert speeds["slow"].throughput_b64_ips == pytest.approx(5000) and speeds["slow"].latency_b1_p50_ms == 0.2
    assert speeds["fast"].throughput_b64_ips == pytest.approx(20000) and speeds["fast"].latency_b1_p50_ms == 0.05
    measured = calls[4:]  # after each model's warm-up
    assert measured[:4] == ["slow"] * 4 and measured[4:8] == ["fast"] * 4 and measured[8] == "slow", \
        "every round visits every model in turn"


def test_a_slow_model_makes_fewer_requests_a_round_and_a_fast_one_the_full_counts() -> None:
    plan = SpeedPlan()
    assert plan.counts(b1_seconds=0.004, batch_seconds=0.3) == (100, 4), "a 32-pixel ResNet-18: the full counts"
    assert plan.counts(b1_seconds=0.017, batch_seconds=1.04) == (30, 1), "a 224-pixel one: half a second of each"
    assert plan.counts(b1_seconds=0.2, batch_seconds=12.0) == (20, 1), "never under the floor of requests"


def test_compressed_size_sees_zeros(tmp_path: Path) -> None:
    dense, sparse = tmp_path / "dense.bin", tmp_path / "sparse.bin"
    rng = np.random.default_rng(0)
    dense.write_bytes(rng.standard_normal(100_000).astype(np.float32).tobytes())
    weights = rng.standard_normal(100_000).astype(np.float32)
    weights[rng.random(100_000) < 0.8] = 0
    sparse.write_bytes(weights.tobytes())
    assert compressed_mb([sparse]) < 0.5 * compressed_mb([dense])


def test_peak_memory_of_a_fresh_process(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [3072, 2048], np.ones(3072 * 2048, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "g", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2048])],
        [weight, helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3072])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    version = tmp_path / "1"
    version.mkdir()
    onnx.save(model, str(version / "model.onnx"))
    fields = OnnxRuntime().triton_fields(version, threads=1)
    (tmp_path / "config.pbtxt").write_text(to_pbtxt(build_config("m", fields, model_io((3, 32, 32)), 2048)))
    memory = peak_memory_mb("onnxruntime", version, 1, (3, 32, 32))
    assert memory.model_peak_mb is not None and memory.model_peak_mb >= 24, "a 25 MB weight is resident at least once"
    assert memory.process_peak_mb is not None and memory.process_peak_mb > memory.model_peak_mb


def test_onnx_accuracy_of_a_file_in_batches(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    # Logits are the two pixels themselves: the brighter one is the class.
    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("Reshape", ["x", "shape"], ["logits"])],
        "g", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 1, 1, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10),
              str(tmp_path / "m.onnx"))
    images = np.random.default_rng(0).permutation(256).astype(np.uint8).reshape(128, 1, 1, 2)
    labels = images.reshape(128, 2).argmax(1)
    labels[:32] = 1 - labels[:32]  # a quarter wrong
    assert onnx_accuracy(tmp_path / "m.onnx", ImageSet(images, labels), threads=1, batch_size=50) == 0.75
