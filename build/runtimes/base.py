"""The runtime interface."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from build.repository.model_config import RuntimeFields


class Runner(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 NCHW images in, float32 logits out."""


class Runtime(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """Why this runtime cannot run here, or None when it can."""

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        """Write the files this runtime serves into out_dir; return them."""

    def runner(self, model_dir: Path, threads: int) -> Runner:
        """An in-process runner over the files `prepare` wrote."""

    def triton_fields(self, threads: int) -> RuntimeFields:
        """Platform or backend, file name and parameters for config.pbtxt."""
