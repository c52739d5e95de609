"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

from build.repository.model_config import RuntimeFields

FILENAME = "model.onnx"


class OnnxRuntime:
    name = "onnxruntime"

    def unavailable_reason(self) -> str | None:
        return None

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        target = out_dir / FILENAME
        shutil.copy2(onnx_path, target)
        return [target]

    def runner(self, model_dir: Path, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model_dir / FILENAME), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(images: np.ndarray) -> np.ndarray:
            return session.run(None, {name: images})[0]

        return run

    def triton_fields(self, threads: int) -> RuntimeFields:
        return RuntimeFields(
            platform="onnxruntime_onnx", filename=FILENAME,
            parameters={"intra_op_thread_count": str(threads), "inter_op_thread_count": "1"},
        )
