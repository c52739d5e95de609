"""The OpenVINO runtimes: where they apply, conversion, precision honesty and tuning."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import build.runtimes.openvino as ov_runtime
from build.errors import ModelRejected
from build.hardware import Hardware
from build.repository.model_config import build_config, model_io, to_pbtxt
from build.runtimes.openvino import OpenVinoRuntime, _served_rate, model_kind
from serving.backends.openvino.ov_session import OvSession, OvSettings
from tests.conftest import present

SPR = Hardware("x86_64", 2, frozenset({"avx512f", "avx512_vnni", "amx_int8", "amx_bf16"}))
F32, BF16 = OpenVinoRuntime("openvino", "f32"), OpenVinoRuntime("openvino_bf16", "bf16")


def _conv_model(path: Path, weight_type: int = TensorProto.FLOAT, qdq: bool = False) -> Path:
    """uint8 images -> float -> (optionally Q/DQ) -> 1x1 conv to 10 channels -> mean over pixels: logits."""
    dtype = helper.tensor_dtype_to_np_dtype(weight_type)
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(10, 3, 1, 1)).astype(dtype), "w")
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=weight_type)]
    inits = [w, helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
    if qdq:
        inits += [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]),
                  helper.make_tensor("z", TensorProto.UINT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xq"])]
    nodes += [helper.make_node("Conv", ["xq" if qdq else "x", "w"], ["c"]),
              helper.make_node("ReduceMean", ["c", "axes"], ["m"], keepdims=0),
              helper.make_node("Cast", ["m"], ["logits"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return path


def test_availability_names_the_reason() -> None:
    assert F32.unavailable_reason(SPR) is None and BF16.unavailable_reason(SPR) is None
    arm = Hardware("aarch64", 4, frozenset())
    assert "x86-64" in present(F32.unavailable_reason(arm))
    no_bf16 = Hardware("x86_64", 2, frozenset({"avx2"}))
    assert F32.unavailable_reason(no_bf16) is None and "BF16" in present(BF16.unavailable_reason(no_bf16))


def test_missing_package_is_a_skip_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ov_runtime, "find_spec", lambda name: None)
    assert "pip install openvino" in present(F32.unavailable_reason(SPR))


def test_runtimes_apply_by_what_the_model_holds(tmp_path: Path) -> None:
    fp32 = _conv_model(tmp_path / "fp32.onnx")
    fp16 = _conv_model(tmp_path / "fp16.onnx", TensorProto.FLOAT16)
    int8 = _conv_model(tmp_path / "int8.onnx", qdq=True)
    assert [model_kind(p) for p in (fp32, fp16, int8)] == ["fp32", "fp16", "int8"]
    assert F32.skip_reason(fp32) is None and BF16.skip_reason(fp32) is None
    assert "GPUs" in present(F32.skip_reason(fp16)) and "GPUs" in present(BF16.skip_reason(fp16))
    assert F32.skip_reason(int8) is None and "INT8" in present(BF16.skip_reason(int8))


def test_a_model_openvino_cannot_convert_is_rejected_with_its_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelRejected, match="OpenVINO could not convert bad.onnx"):
        F32.prepare(bad, tmp_path)


def _published(runtime: OpenVinoRuntime, onnx_path: Path, version_dir: Path):
    version_dir.mkdir(parents=True)
    files = runtime.prepare(onnx_path, version_dir)
    fields = runtime.triton_fields(version_dir, threads=2)
    (version_dir.parent / "config.pbtxt").write_text(to_pbtxt(build_config("m", fields, model_io((3, 32, 32)), 10)))
    return files, fields, runtime.runner(version_dir, threads=2)


def test_fp32_runs_in_fp32_and_bf16_in_bf16_as_config_says(tmp_path: Path) -> None:
    src = _conv_model(tmp_path / "fp32.onnx")
    images = np.random.default_rng(1).integers(0, 256, (8, 3, 4, 4), dtype=np.uint8)
    expected = onnx_reference(src, images)
    files, fields, run = _published(OpenVinoRuntime("openvino", "f32"), src, tmp_path / "f32" / "1")
    assert [f.name for f in files] == ["model.xml", "model.bin"] and all(f.exists() for f in files)
    assert fields.backend == "openvino" and fields.filename == "model.xml"
    assert fields.parameters["INFERENCE_PRECISION_HINT"] == "f32" and fields.parameters["ENABLE_BATCH_PADDING"] == "YES"
    np.testing.assert_allclose(run(images), expected, rtol=1e-5, atol=1e-4)
    info = OpenVinoRuntime("openvino", "f32").describe(run)
    assert info["precision_ran"] == "f32" and info["settings"]["INFERENCE_PRECISION_HINT"] == "f32"
    _, fields, run = _published(OpenVinoRuntime("openvino_bf16", "bf16"), src, tmp_path / "bf16" / "1")
    assert fields.parameters["HINT_BF16"] == "YES"
    np.testing.assert_allclose(run(images), expected, rtol=0.05, atol=0.5)


def test_tuning_measures_each_candidate_and_records_the_choice(tmp_path: Path) -> None:
    runtime = OpenVinoRuntime("openvino", "f32")
    _, fields, _ = _published(runtime, _conv_model(tmp_path / "m.onnx"), tmp_path / "m" / "1")
    settings, tuning = runtime.tuned(tmp_path / "m" / "1", threads=2)
    assert [c["settings"]["PERFORMANCE_HINT"] for c in tuning["candidates"]] == ["LATENCY", "THROUGHPUT"]
    assert all(c["throughput_b64_ips"] > 0 and c["latency_b1_p50_ms"] > 0 for c in tuning["candidates"])
    assert tuning["chosen"] == settings.parameters() and fields.parameters["NUM_STREAMS"] == str(settings.streams)


def test_tuning_throughput_keeps_a_whole_batch_on_every_stream_as_the_backend_does() -> None:
    class Streams:
        settings = OvSettings("THROUGHPUT", streams=2, threads=2)

        def __init__(self) -> None:
            self.started: list[int] = []
            self.waits = 0

        def start(self, images: np.ndarray) -> None:
            self.started.append(len(images))

        def wait(self) -> None:
            self.waits += 1

    session = Streams()
    # Stands in for an OvSession: _served_rate uses only its settings, start and wait.
    assert _served_rate(cast(OvSession, session), np.zeros((64, 3, 32, 32), np.uint8), batches_per_stream=3) > 0
    assert session.started == [64] * 6 and session.waits == 1


def onnx_reference(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
