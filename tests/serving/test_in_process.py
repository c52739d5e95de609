"""A repository model run in process on the session its Triton backend would build from config.pbtxt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from serving.backends.openvino.ov_session import OvSession
from serving.in_process import in_process_runner, model_config
from tests.serving.backends.conftest import sum_model

IO = ('input { name: "images" data_type: TYPE_UINT8 dims: [3, 2, 2] }\n'
      'output { name: "logits" data_type: TYPE_FP32 dims: 3 }\n')


def _folder(root: Path, runtime_line: str, params: dict[str, str]) -> Path:
    folder = root / "m"
    folder.mkdir()
    extra = "".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n' for k, v in params.items())
    (folder / "config.pbtxt").write_text(f'name: "m"\n{runtime_line}\nmax_batch_size: 8\n{IO}{extra}')
    return folder


def test_onnxruntime_model_runs_with_its_config_threads(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 'platform: "onnxruntime_onnx"', {"intra_op_thread_count": "1"})
    sum_model(folder / "1" / "model.onnx")
    sum_model(folder / "2" / "model.onnx")  # the latest version is the one served
    assert model_config(folder)["parameters"]["intra_op_thread_count"]["string_value"] == "1"
    logits = in_process_runner(folder)(np.full((2, 3, 2, 2), 3, np.uint8))
    assert logits.shape == (2, 3) and np.all(logits == 12)


def test_openvino_model_runs_on_the_backends_session(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 'backend: "openvino"\ndefault_model_filename: "model.xml"',
                     {"NUM_STREAMS": "2", "PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": "1"})
    ov.save_model(ov.convert_model(str(sum_model(tmp_path / "src.onnx"))), str(folder / "1" / "model.xml"))
    run = in_process_runner(folder)
    assert isinstance(run, OvSession) and run.settings.streams == 2
    assert np.all(run(np.ones((4, 3, 2, 2), np.uint8)) == 4)


def test_unknown_runtime_and_missing_config_are_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 'platform: "tensorrt_plan"', {})
    with pytest.raises(ValueError, match="tensorrt_plan"):
        in_process_runner(folder)
    with pytest.raises(ValueError, match="no config.pbtxt"):
        in_process_runner(tmp_path)
