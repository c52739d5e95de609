"""The runtime interface: a base class whose defaults say what most runtimes do, so that the build asks every
runtime the same questions and never probes for optional methods."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np

from build.hardware import Hardware
from build.repository.model_config import RuntimeFields
from build.verification import Tolerance

if TYPE_CHECKING:  # the registry imports the steps, which import this module: the type alone is needed
    from build.variants.base import Variant


class Runner(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 NCHW images in, float32 logits out."""


RunnerT = TypeVar("RunnerT", bound=Runner)


class Runtime(ABC, Generic[RunnerT]):
    """One runtime of one build: the registry makes a fresh instance per build (see `make_runtime`), so whatever
    it learns while building (OpenVINO's tuning, TensorRT's device and plans) ends with the build.

    Generic in the runner it makes: describe() takes the runner that this runtime's runner() returned."""

    name: str
    max_drop_points: float | None = None  # accuracy it may lose against the exact FP32 reference; None: no budget

    def unavailable_reason(self, hw: Hardware) -> str | None:
        """Why this runtime cannot run on this machine, or None when it can."""
        return None

    def skip_variant(self, variant: Variant) -> str | None:
        """Why this runtime declines a variant, from what the variant declares (its precision, whether it is a
        baseline), before its file is read; None: it takes it."""
        return None

    def skip_reason(self, onnx_path: Path) -> str | None:
        """Why this runtime does not apply to this model (e.g. FP16 weights on a CPU runtime), or None."""
        return None

    @abstractmethod
    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        """Write the files this runtime serves into out_dir; return them. ModelRejected if it cannot."""

    @abstractmethod
    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        """Backend or platform, file name and parameters for config.pbtxt (model_dir: the version folder)."""

    @abstractmethod
    def runner(self, model_dir: Path, threads: int) -> RunnerT:
        """An in-process runner over the files in model_dir (a version folder), configured as the model's
        config.pbtxt says."""

    def tolerance(self, variant: Tolerance) -> Tolerance:
        """How far this runtime may drift from the variant's reference logits."""
        return variant

    @abstractmethod
    def describe(self, run: RunnerT) -> dict:
        """What really ran: versions, settings and, where the runtime says, the precision of its kernels."""

    def load_libraries(self, model_dir: Path) -> None:  # noqa: B027 - most runtimes load theirs with the model
        """Load what every model of this runtime shares (before a memory baseline, so no model's figure has it)."""

    def device_speed(self, run: RunnerT) -> dict[str, float]:
        """What a device runner timed itself (CUDA events), merged into the measured speed; none on a CPU."""
        return {}

    def device_memory(self, run: RunnerT) -> dict[str, float]:
        """A device runner's memory figures (GPU peak), merged into the memory record; none on a CPU."""
        return {}
