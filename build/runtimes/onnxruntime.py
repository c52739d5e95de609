"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from build.hardware import Hardware
from build.repository.model_config import RuntimeFields
from build.verification import Tolerance

FILENAME = "model.onnx"
# Convolution kernels ONNX Runtime runs on integers; every other *Conv* node (Conv, FusedConv, NchwcConv) is float.
INTEGER_CONVS = ("QLinearConv", "ConvInteger")


class OnnxRuntime:
    name = "onnxruntime"
    max_drop_points: float | None = None  # it runs the variant's own file: the variant's accuracy is this model's

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

    def runner(self, model_dir: Path, threads: int) -> OrtSession:
        return OrtSession(model_dir / FILENAME, threads)

    def tolerance(self, variant: Tolerance) -> Tolerance:
        return variant

    def describe(self, run: OrtSession) -> dict:
        convs = run.conv_kernels()
        return {"version": ort.__version__, "provider": "CPUExecutionProvider", "conv_kernels": convs,
                "precision_ran": precision_of(convs)}


class OrtSession:
    """A CPU session as Triton's backend configures it, callable on a batch."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path, self.threads = path, threads
        self.session = ort.InferenceSession(str(path), self._options(), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]

    def _options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        return opts

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input.name: images})[0]

    def conv_kernels(self) -> dict[str, int]:
        """The convolution kernels that really run, by op type, from one profiled batch of one image: the graph
        ONNX Runtime executes after its own fusions (QDQ to QLinearConv, Conv+Relu to FusedConv), not the file's."""
        opts = self._options()
        opts.enable_profiling = True
        with tempfile.TemporaryDirectory(prefix="tritonzoo-ort-profile-") as tmp:
            opts.profile_file_prefix = str(Path(tmp) / "profile")
            session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            shape = [1, *(d if isinstance(d, int) else 1 for d in self.input.shape[1:])]
            session.run(None, {self.input.name: np.zeros(shape, np.uint8)})
            events = json.loads(Path(session.end_profiling()).read_text())
        ops: Counter[str] = Counter(e["args"]["op_name"] for e in events
                                    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                                    and "Conv" in e.get("args", {}).get("op_name", ""))
        return dict(ops.most_common())


def precision_of(conv_kernels: dict[str, int]) -> str:
    """int8 when most convolutions run on integer kernels, else fp32 (the CPU provider's float kernels)."""
    integer = sum(n for op, n in conv_kernels.items() if op in INTEGER_CONVS)
    return "int8" if integer > sum(conv_kernels.values()) - integer else "fp32"
