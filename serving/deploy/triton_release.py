"""Which NVIDIA Triton container serves the repository: the release of the tritonserver every test here runs.

The project serves with the tritonserver of the nvidia-pytriton wheel (2.51.0, the 24.10 release), and the build
writes its models for that release's backends (ONNX Runtime 1.19.2 reads ONNX IR <= 10; OpenVINO 2024.4.0). The
container of the same release loads the same repository with its native C++ backends.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.deploy.repository import DeployError, Repository

CONTAINER = "nvcr.io/nvidia/tritonserver"
# Triton picks a backend from a config's platform when it names no backend.
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow"}


@dataclass(frozen=True)
class Release:
    server: str                  # tritonserver's own version
    container: str               # the NGC container's release tag
    backends: frozenset[str]     # native backends the container ships
    notes: str = ""

    @property
    def image(self) -> str:
        return f"{CONTAINER}:{self.container}-py3"


# The release the repository is built for: nvidia-pytriton==0.7.0 (pyproject's serve extra) ships tritonserver
# 2.51.0, which is the 24.10 release. Its container's backends are from the 24.10 release notes.
SERVED = Release(server="2.51.0", container="24.10",
                 backends=frozenset({"onnxruntime", "openvino", "tensorrt", "python", "pytorch", "tensorflow",
                                     "fil", "identity"}),
                 notes="ONNX Runtime 1.19.2, OpenVINO 2024.4.0, TensorRT 10.5")


def backend_of(backend_or_platform: str) -> str:
    return PLATFORM_BACKENDS.get(backend_or_platform, backend_or_platform)


def release_for(repo: Repository) -> Release:
    """The container release that has every backend the repository's models name; DeployError naming any it lacks."""
    missing = {m: s.backend for m, s in repo.models.items() if backend_of(s.backend) not in SERVED.backends}
    if missing:
        raise DeployError(f"Triton {SERVED.server} ({SERVED.image}) has no backend for {missing}; "
                          f"it ships {sorted(SERVED.backends)}")
    return SERVED
