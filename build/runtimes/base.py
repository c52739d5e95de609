"""The runtime interface."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from build.hardware import Hardware
from build.repository.model_config import RuntimeFields
from build.verification import Tolerance


class Runner(Protocol):
    # Optional, for runners on a device: device_speed() -> dict merged into the measured speed (e.g. CUDA-event
    # timings), device_memory() -> dict merged into the memory figures (e.g. GPU peak). steps/measure.py reads them.

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 NCHW images in, float32 logits out."""


RunnerT = TypeVar("RunnerT", bound=Runner)


class Runtime(Protocol[RunnerT]):
    # Generic in the runner it makes: describe() takes the runner that this runtime's runner() returned.
    # Optional: skip_variant(variant_name) -> str | None, a refusal by variant before the file is read
    # (PublishRuntime asks it first; TensorRT builds only fp32, fp16 and the INT8 variants).
    name: str
    max_drop_points: float | None  # accuracy it may lose against the exact FP32 reference; None: no budget

    def unavailable_reason(self, hw: Hardware) -> str | None:
        """Why this runtime cannot run on this machine, or None when it can."""

    def skip_reason(self, onnx_path: Path) -> str | None:
        """Why this runtime does not apply to this model (e.g. FP16 weights on a CPU runtime), or None."""

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        """Write the files this runtime serves into out_dir; return them. ModelRejected if it cannot."""

    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        """Backend or platform, file name and parameters for config.pbtxt (model_dir: the version folder)."""

    def runner(self, model_dir: Path, threads: int) -> RunnerT:
        """An in-process runner over the files in model_dir, configured as config.pbtxt says."""

    def tolerance(self, variant: Tolerance) -> Tolerance:
        """How far this runtime may drift from the variant's reference logits."""

    def describe(self, run: RunnerT) -> dict:
        """What really ran: versions, settings and, where the runtime says, the precision of its kernels."""
