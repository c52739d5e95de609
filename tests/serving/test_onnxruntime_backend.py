"""The Python-based onnxruntime backend, driven through a small fake of Triton's pb_utils."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

BACKEND = Path(__file__).resolve().parents[2] / "serving" / "backends" / "onnxruntime" / "model.py"


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class FakeResponse:
    def __init__(self, output_tensors=(), error=None) -> None:
        self.output_tensors, self.error = list(output_tensors), error


class FakeRequest:
    def __init__(self, **inputs: np.ndarray) -> None:
        self.inputs = inputs


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch):
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor = FakeTensor
    fake.InferenceResponse = FakeResponse
    fake.TritonError = lambda msg: msg
    fake.get_input_tensor_by_name = lambda req, name: FakeTensor(name, req.inputs[name])
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location("ort_backend_model", BACKEND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_dir(tmp_path: Path) -> Path:
    """A model computing logits = float(images).sum over pixels per channel -> shape [N, 3]."""
    node_cast = helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT)
    node_sum = helper.make_node("ReduceSum", ["f", "axes"], ["logits"], keepdims=0)
    graph = helper.make_graph(
        [node_cast, node_sum], "g",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])],
    )
    (tmp_path / "1").mkdir()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, tmp_path / "1" / "model.onnx")
    return tmp_path


def _initialize(backend, model_dir: Path, max_batch_size: int = 8, **params: str):
    config = {"max_batch_size": max_batch_size, "input": [{"name": "images"}], "output": [{"name": "logits"}],
              "parameters": {k: {"string_value": v} for k, v in params.items()}}
    model = backend.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_repository": str(model_dir), "model_version": "1"})
    return model


def test_dynamic_batch_is_run_once_and_split_back(backend, tmp_path: Path) -> None:
    model = _initialize(backend, _model_dir(tmp_path), intra_op_thread_count="1")
    assert model.session.get_session_options().intra_op_num_threads == 1
    a = np.ones((1, 3, 2, 2), np.uint8)
    b = np.full((2, 3, 2, 2), 2, np.uint8)
    responses = model.execute([FakeRequest(images=a), FakeRequest(images=b)])
    assert [r.output_tensors[0].as_numpy().shape for r in responses] == [(1, 3), (2, 3)]
    assert np.all(responses[0].output_tensors[0].as_numpy() == 4)
    assert np.all(responses[1].output_tensors[0].as_numpy() == 8)


def test_runtime_failure_answers_every_request_with_an_error(backend, tmp_path: Path) -> None:
    model = _initialize(backend, _model_dir(tmp_path))
    bad = np.ones((1, 3, 5, 5), np.float32)  # wrong dtype reaches ORT only if Triton did not catch it
    responses = model.execute([FakeRequest(images=bad), FakeRequest(images=bad)])
    assert all(r.error and r.error.startswith("onnxruntime:") for r in responses)


def test_graph_level_follows_native_backend_semantics(backend) -> None:
    ort = backend.ort
    assert backend.session_options({}).graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts = backend.session_options({"optimization": {"graph": {"level": 2}}})
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
