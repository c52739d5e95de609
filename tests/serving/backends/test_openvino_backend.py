"""The Python-based openvino backend and its session, driven through a small fake of Triton's pb_utils."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from tests.serving.backends.conftest import FINAL, FakeRequest, FakeResponse, FakeSender, initialize, sum_model


@pytest.fixture
def backend(load_backend):
    return load_backend("openvino")


def _model_dir(tmp_path: Path) -> Path:
    model = ov.convert_model(str(sum_model(tmp_path / "src" / "model.onnx")))
    ov.save_model(model, str(tmp_path / "1" / "model.xml"), compress_to_fp16=False)
    return tmp_path


def _answers(model, requests: list[FakeRequest]) -> list[FakeResponse]:
    """What each request was sent once every started batch has finished: exactly one final response each."""
    assert model.execute(requests) is None, "answers go through the response senders"
    model.session.wait()
    assert all(len(r.sender.sent) == 1 and r.sender.sent[0][1] == FINAL for r in requests)
    return [r.sender.sent[0][0] for r in requests]


def test_each_dynamic_batch_runs_whole_on_a_stream_and_is_split_back_in_order(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path), PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS="2",
                       INFERENCE_NUM_THREADS="1")
    assert model.session.settings.streams == 2
    batches = [[FakeRequest(images=np.full((n, 3, 2, 2), n + k, np.uint8)) for n in (1, 2, 3)] for k in range(4)]
    for requests in batches:  # more batches than streams: later ones wait for a free stream
        assert model.execute(requests) is None
    model.finalize()  # waits for the batches still in flight
    for k, requests in enumerate(batches):
        for n, request in zip((1, 2, 3), requests):
            ((response, flags),) = request.sender.sent
            logits = response.output_tensors[0].as_numpy()
            assert flags == FINAL and logits.shape == (n, 3) and np.all(logits == 4 * (n + k))


def test_a_call_splits_one_batch_across_streams_and_joins_it_in_order(backend, tmp_path: Path) -> None:
    session = backend.OvSession(_model_dir(tmp_path) / "1" / "model.xml", backend.OvSettings("THROUGHPUT", 2, 1))
    images = np.arange(5)[:, None, None, None].repeat(3, 1).repeat(2, 2).repeat(2, 3).astype(np.uint8)
    assert np.array_equal(session(images)[:, 0], 4 * np.arange(5))


def test_fp32_is_forced_unless_bf16_is_asked_for(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))
    assert str(model.session.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    settings = backend.OvSettings.from_parameters({"HINT_BF16": "YES"})
    assert settings.precision == "bf16", "the native backend's HINT_BF16 key is honoured"


def test_a_bad_batch_answers_every_request_with_an_error_and_serving_goes_on(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))
    for bad in (np.ones((1, 3, 5, 5), np.uint8), np.ones((1, 3, 2, 2), np.float32)):
        responses = _answers(model, [FakeRequest(images=bad), FakeRequest(images=bad)])
        assert all(r.error.startswith("openvino: input") and "does not fit" in r.error for r in responses)
    (good,) = _answers(model, [FakeRequest(images=np.ones((1, 3, 2, 2), np.uint8))])
    assert np.all(good.output_tensors[0].as_numpy() == 4)


def test_a_response_that_cannot_be_sent_is_logged_and_serving_goes_on(backend, tmp_path: Path) -> None:
    model = initialize(backend, _model_dir(tmp_path))

    class GoneSender(FakeSender):
        def send(self, response: FakeResponse, flags: int = 0) -> None:
            raise RuntimeError("the client went away")

    gone = FakeRequest(images=np.ones((1, 3, 2, 2), np.uint8))
    gone.sender = GoneSender()
    assert model.execute([gone]) is None
    model.session.wait()
    (error,) = backend.pb_utils.Logger.errors
    assert error == "openvino: could not answer a batch of 1 request(s): the client went away"
    (good,) = _answers(model, [FakeRequest(images=np.ones((1, 3, 2, 2), np.uint8))])
    assert np.all(good.output_tensors[0].as_numpy() == 4)


def test_settings_round_trip_through_triton_parameters(backend) -> None:
    settings = backend.OvSettings("THROUGHPUT", 2, 1, "bf16")
    params = settings.parameters()
    assert params["HINT_BF16"] == "YES" and params["INFERENCE_PRECISION_HINT"] == "bf16"
    assert backend.OvSettings.from_parameters(params) == settings
