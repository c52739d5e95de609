"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from build.repository.model_config import RuntimeFields
from build.runtimes.base import Runtime
from serving.backends.onnxruntime.ort_session import OrtRunner, session_options
from serving.in_process import ort_runner

FILENAME = "model.onnx"
# Convolution kernels ONNX Runtime runs on integers; every other *Conv* node (Conv, FusedConv, NchwcConv) is float.
INTEGER_CONVS = ("QLinearConv", "ConvInteger")


class OnnxRuntime(Runtime["OrtRunner"]):
    name = "onnxruntime"
    max_drop_points: float | None = None  # it runs the variant's own file: the variant's accuracy is this model's

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        target = out_dir / FILENAME
        shutil.copy2(onnx_path, target)
        return [target]

    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        return RuntimeFields(
            platform="onnxruntime_onnx", filename=FILENAME,
            parameters={"intra_op_thread_count": str(threads), "inter_op_thread_count": "1"},
        )

    def runner(self, model_dir: Path, threads: int) -> OrtRunner:
        """The session the backend serves: made by serving's factory from the model's config.pbtxt (its threads,
        its graph level), so the build times what Triton runs."""
        return ort_runner(model_dir.parent, model_dir)

    def describe(self, run: OrtRunner) -> dict:
        convs = conv_kernels(run)
        return {"version": ort.__version__, "provider": "CPUExecutionProvider", "conv_kernels": convs,
                "precision_ran": precision_of(convs)}


def conv_kernels(run: OrtRunner) -> dict[str, int]:
    """The convolution kernels that really run, by op type, from one profiled batch of one image: the graph
    ONNX Runtime executes after its own fusions (QDQ to QLinearConv, Conv+Relu to FusedConv), not the file's."""
    opts = session_options(run.config)
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="tritonzoo-ort-profile-") as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(run.path, opts, providers=["CPUExecutionProvider"])
        shape = [1, *(d if isinstance(d, int) else 1 for d in run.input.shape[1:])]
        session.run(None, {run.input.name: np.zeros(shape, np.uint8)})
        events = json.loads(Path(session.end_profiling()).read_text())
    ops: Counter[str] = Counter(e["args"]["op_name"] for e in events
                                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                                and "Conv" in e.get("args", {}).get("op_name", ""))
    return dict(ops.most_common())


def precision_of(conv_kernels: dict[str, int]) -> str:
    """int8 when most convolutions run on integer kernels, else fp32 (the CPU provider's float kernels)."""
    integer = sum(n for op, n in conv_kernels.items() if op in INTEGER_CONVS)
    return "int8" if integer > sum(conv_kernels.values()) - integer else "fp32"
