"""The Python-based openvino backend and its session, driven through a small fake of Triton's pb_utils."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from tests.serving.backends.conftest import FakeRequest, initialize, sum_model


@pytest.fixture
def backend(load_backend):
    return load_backend("openvino")


def _model_dir(tmp_path: Path) -> Path:
    model = ov.convert_model(str(sum_model(tmp_path / "src" / "model.onnx")))
    ov.save_model(model, str(tmp_path / "1" / "model.xml"), compress_to_fp16=False)
    return tmp_path


def test_dynamic_batch_is_split_across_streams_and_joined_in_order(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path), PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS="2",
                       INFERENCE_NUM_THREADS="1")
    assert model.session.settings.streams == 2
    batches = [np.full((n, 3, 2, 2), n, np.uint8) for n in (1, 2, 3)]
    responses = model.execute([FakeRequest(images=b) for b in batches])
    for n, response in zip((1, 2, 3), responses):
        logits = response.output_tensors[0].as_numpy()
        assert logits.shape == (n, 3) and np.all(logits == 4 * n)


def test_fp32_is_forced_unless_bf16_is_asked_for(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))
    assert str(model.session.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    settings = backend.OvSettings.from_parameters({"HINT_BF16": "YES"})
    assert settings.precision == "bf16", "the native backend's HINT_BF16 key is honoured"


def test_a_bad_batch_answers_every_request_with_an_error_and_serving_goes_on(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))
    bad = np.ones((1, 3, 5, 5), np.uint8)
    assert all(r.error.startswith("openvino:") for r in model.execute([FakeRequest(images=bad)] * 2))
    (good,) = model.execute([FakeRequest(images=np.ones((1, 3, 2, 2), np.uint8))])
    assert np.all(good.output_tensors[0].as_numpy() == 4)


def test_settings_round_trip_through_triton_parameters(backend) -> None:
    settings = backend.OvSettings("THROUGHPUT", 2, 1, "bf16")
    params = settings.parameters()
    assert params["HINT_BF16"] == "YES" and params["INFERENCE_PRECISION_HINT"] == "bf16"
    assert backend.OvSettings.from_parameters(params) == settings
