"""The Python-based onnxruntime backend, driven through a small fake of Triton's pb_utils."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serving.backends.onnxruntime.ort_session import session_options
from tests.serving.backends.conftest import FakeRequest, initialize, sum_model


@pytest.fixture
def backend(load_backend):
    return load_backend("onnxruntime")


def _model_dir(tmp_path: Path) -> Path:
    sum_model(tmp_path / "1" / "model.onnx")
    return tmp_path


def test_dynamic_batch_is_run_once_and_split_back(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path), intra_op_thread_count="1")
    assert model.session.get_session_options().intra_op_num_threads == 1
    a = np.ones((1, 3, 2, 2), np.uint8)
    b = np.full((2, 3, 2, 2), 2, np.uint8)
    responses = model.execute([FakeRequest(images=a), FakeRequest(images=b)])
    assert [r.output_tensors[0].as_numpy().shape for r in responses] == [(1, 3), (2, 3)]
    assert np.all(responses[0].output_tensors[0].as_numpy() == 4)
    assert np.all(responses[1].output_tensors[0].as_numpy() == 8)


def test_runtime_failure_answers_every_request_with_an_error(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))
    bad = np.ones((1, 3, 5, 5), np.float32)  # wrong dtype reaches ORT only if Triton did not catch it
    responses = model.execute([FakeRequest(images=bad), FakeRequest(images=bad)])
    assert all(r.error and r.error.startswith("onnxruntime:") for r in responses)


def test_graph_level_follows_native_backend_semantics() -> None:
    assert session_options({}).graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts = session_options({"optimization": {"graph": {"level": 2}}})
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
