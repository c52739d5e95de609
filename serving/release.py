"""The NVIDIA Triton release a repository is built for and deployed with, named once, here.

A release fixes every runtime that will read the repository: the container's ONNX Runtime and OpenVINO load the
ONNX and OpenVINO files, and its TensorRT is the only one that loads the plans (a plan loads only in the TensorRT
version that built it). The build records the target release in the manifest, `invoke k8s` deploys that release's
container, and `invoke verify-release` loads the repository in that release's ONNX Runtime and OpenVINO wheels.

Standard library only: build/, serving/ and tasks.py all read it.

Sources (read 2026-12-06): the server repository's docs/introduction/compatibility.md (ONNX Runtime per release;
TensorRT, CUDA and driver from its trtllm-python-py3 table) and the DEFAULT_TRITON_VERSION_MAP of build.py at each
release tag (v2.51.0 ... v2.71.0: ONNX Runtime and the standalone OpenVINO). 24.10's TensorRT 10.5 and CUDA 12.6
come from its release notes (its trtllm image carries another TensorRT, 10.4). For the other releases the trtllm
table is the only per-release TensorRT figure in those sources: read the release notes of the container before a
GPU deployment, and correct the row here if they differ.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

CONTAINER = "nvcr.io/nvidia/tritonserver"
ENV = "TRITONZOO_TRITON_RELEASE"  # picks the target release of a build (default: DEFAULT)
# Native backends of the full `-py3` container (release notes), the same in every release listed here.
BACKENDS = frozenset({"onnxruntime", "openvino", "tensorrt", "python", "pytorch", "tensorflow", "fil", "identity"})


class ReleaseError(ValueError):
    """An unknown release, or one that does not match what a repository was built for."""


@dataclass(frozen=True)
class Release:
    name: str          # the NGC container release, e.g. "26.07"
    server: str        # tritonserver's own version
    tensorrt: str
    onnxruntime: str
    openvino: str
    cuda: str
    min_driver: str    # the NVIDIA driver the container's CUDA needs (data-center GPUs also have forward compatibility)
    tensorrt_wheel: str  # the PyPI package of the same TensorRT for the build: tensorrt-cu12 or tensorrt-cu13

    @property
    def image(self) -> str:
        return f"{CONTAINER}:{self.name}-py3"

    @property
    def backends(self) -> frozenset[str]:
        return BACKENDS

    def runtime_wheels(self) -> list[str]:
        """The pip requirements of an environment with exactly this release's CPU runtimes."""
        return [f"onnxruntime=={self.onnxruntime}", f"openvino=={self.openvino}"]

    def tensorrt_matches(self, version: str) -> bool:
        """Whether a plan built by TensorRT `version` loads in this release: the same major.minor.patch (the fourth
        field is the build number, which the container's and the wheel's releases of one version share)."""
        return _release_part(version) == _release_part(self.tensorrt)

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "image": self.image}


def _release_part(version: str) -> tuple[str, ...]:
    return tuple(version.strip().split("+")[0].split(".")[:3])


RELEASES: dict[str, Release] = {r.name: r for r in (
    # The tritonserver that `invoke serve` and every end-to-end test here run (the nvidia-pytriton 0.7.0 wheel).
    Release("24.10", "2.51.0", "10.5.0", "1.19.2", "2024.4.0", "12.6.2", "560.35.03", "tensorrt-cu12"),
    Release("25.12", "2.64.0", "10.13.3.9", "1.23.2", "2025.4.0", "13.0.2", "580.95.05", "tensorrt-cu13"),
    Release("26.02", "2.66.0", "10.13.3.9", "1.24.1", "2025.4.1", "13.0.2", "580.95.05", "tensorrt-cu13"),
    Release("26.07", "2.71.0", "10.14.1.48", "1.27.0", "2026.2.0", "13.1.0", "590.44.01", "tensorrt-cu13"),
)}
# The current release (the server repository's README names 26.07 as the latest); all its runtimes are on PyPI.
DEFAULT = "26.07"


def release_named(name: str) -> Release:
    """The known release of that name; ReleaseError listing the known ones otherwise."""
    release = RELEASES.get(name.strip())
    if release is None:
        raise ReleaseError(f"unknown Triton release {name!r}; known: {', '.join(RELEASES)} (add a row to "
                           "serving/release.py from the release's notes to use another)")
    return release


def target_release() -> Release:
    """The release a build targets: $TRITONZOO_TRITON_RELEASE, else DEFAULT."""
    return release_named(os.environ.get(ENV) or DEFAULT)
