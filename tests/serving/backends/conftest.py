"""A small fake of Triton's pb_utils, a loader for a backend's model.py, and a tiny ONNX model."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

BACKENDS = Path(__file__).resolve().parents[3] / "serving" / "backends"


class FakeTensor:
    def __init__(self, name: str, array) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self):
        return self._array


class FakeResponse:
    def __init__(self, output_tensors=(), error=None) -> None:
        self.output_tensors, self.error = list(output_tensors), error


FINAL = 1  # TRITONSERVER_RESPONSE_COMPLETE_FINAL


class FakeSender:
    """A request's response sender: records what is sent, and with which flags."""

    def __init__(self) -> None:
        self.sent: list[tuple[FakeResponse, int]] = []

    def send(self, response: FakeResponse, flags: int = 0) -> None:
        self.sent.append((response, flags))


class FakeRequest:
    def __init__(self, **inputs) -> None:
        self.inputs = inputs
        self.sender = FakeSender()

    def get_response_sender(self) -> FakeSender:
        return self.sender


class FakeLogger:
    """pb_utils.Logger: keeps the errors logged."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def log_error(self, message: str) -> None:
        self.errors.append(message)


class FakePbUtils(types.ModuleType):
    """The fake `triton_python_backend_utils`: what the backends use of it."""

    TRITONSERVER_RESPONSE_COMPLETE_FINAL = FINAL

    def __init__(self) -> None:
        super().__init__("triton_python_backend_utils")
        self.Tensor, self.InferenceResponse, self.Logger = FakeTensor, FakeResponse, FakeLogger()

    @staticmethod
    def TritonError(message: str) -> str:
        return message

    @staticmethod
    def get_input_tensor_by_name(request: FakeRequest, name: str) -> FakeTensor:
        return FakeTensor(name, request.inputs[name])


@pytest.fixture
def load_backend(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], types.ModuleType]:
    """Import `serving/backends/<name>/model.py` as Triton does: its folder on sys.path, pb_utils faked."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", FakePbUtils())

    def load(name: str) -> types.ModuleType:
        monkeypatch.syspath_prepend(str(BACKENDS / name))
        spec = importlib.util.spec_from_file_location(f"{name}_backend_model", BACKENDS / name / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def sum_model(path: Path) -> Path:
    """An ONNX model computing logits = float(images) summed over pixels per channel -> shape [N, 3]."""
    node_cast = helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT)
    node_sum = helper.make_node("ReduceSum", ["f", "axes"], ["logits"], keepdims=0)
    graph = helper.make_graph(
        [node_cast, node_sum], "g",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return path


def initialize(backend: types.ModuleType, model_dir: Path, max_batch_size: int = 8, **params: str):
    config = {"max_batch_size": max_batch_size, "input": [{"name": "images"}], "output": [{"name": "logits"}],
              "parameters": {k: {"string_value": v} for k, v in params.items()}}
    model = backend.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_repository": str(model_dir), "model_version": "1"})
    return model
