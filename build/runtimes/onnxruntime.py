"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

from build.hardware import Hardware
from build.repository.model_config import RuntimeFields
from build.verification import Tolerance

FILENAME = "model.onnx"


class OnnxRuntime:
    name = "onnxruntime"
    max_drop_points = None  # it runs the variant's own file: the variant's accuracy is this model's

    def unavailable_reason(self, hw: Hardware) -> str | None:
        return None

    def skip_reason(self, onnx_path: Path) -> str | None:
        return None

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        target = out_dir / FILENAME
        shutil.copy2(onnx_path, target)
        return [target]

    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        return RuntimeFields(
            platform="onnxruntime_onnx", filename=FILENAME,
            parameters={"intra_op_thread_count": str(threads), "inter_op_thread_count": "1"},
        )

    def runner(self, model_dir: Path, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model_dir / FILENAME), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(images: np.ndarray) -> np.ndarray:
            return session.run(None, {name: images})[0]

        return run

    def tolerance(self, variant: Tolerance) -> Tolerance:
        return variant

    def describe(self, run) -> dict:
        return {"version": ort.__version__, "provider": "CPUExecutionProvider"}
