"""What the manifests need to know about a published repository, read from its manifest and config.pbtxt files.

No model fact is written into the generator: which models there are, which backend each needs, whether it needs a
GPU, how long dynamic batching holds a request and how much memory a model took all come from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.manifest import MANIFEST, ModelEntry, load_manifest, read_manifest

CONFIG = "config.pbtxt"
# Triton platforms and backends that only run on a GPU: a TensorRT plan is built for one GPU's compute capability.
GPU_ONLY = frozenset({"tensorrt_plan", "tensorrt"})


class DeployError(ValueError):
    """The repository or the options cannot make a deployment; the message says what to change."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    backend: str             # config.pbtxt's backend, else its platform (Triton picks the backend from it)
    max_queue_delay_us: int  # dynamic batching's deliberate wait; 0 without dynamic batching
    memory_mb: float | None  # the build's measured peak memory of the model, where it measured one
    labels: str              # the labels file, relative to the model's folder
    family: str
    input_dims: tuple[int, ...]
    gpu_instances: bool = False  # an instance group of KIND_GPU: Triton refuses to load it without a GPU
    tensorrt: str = ""           # the TensorRT version that built the plan, as the manifest records it
    capabilities: tuple[str, ...] = ()  # GPU compute capabilities it has a plan for ("9.0"), from cc_model_filenames

    @property
    def gpu_only(self) -> bool:
        return self.backend in GPU_ONLY or self.gpu_instances


@dataclass(frozen=True)
class Repository:
    path: Path
    models: dict[str, ServedModel]
    release: str | None = None  # the Triton release the manifest says the models were built for

    @property
    def cpu_models(self) -> list[str]:
        return sorted(m for m, s in self.models.items() if not s.gpu_only)

    @property
    def gpu_models(self) -> list[str]:
        return sorted(m for m, s in self.models.items() if s.gpu_only)

    @property
    def backends(self) -> set[str]:
        return {s.backend for s in self.models.values()}

    def manifest_text(self) -> str:
        return (self.path / MANIFEST).read_text()


def read_repository(path: Path) -> Repository:
    """The published models with what deployment needs of each; DeployError for a repository that cannot serve."""
    path = Path(path)
    manifest = load_manifest(path)
    if not manifest:
        raise DeployError(f"{path}/{MANIFEST} lists no models: build the repository first with `invoke build`")
    return Repository(path, {name: _served(path, name, entry) for name, entry in sorted(manifest.items())},
                      read_manifest(path).release_name)


def _served(repo: Path, name: str, entry: ModelEntry) -> ServedModel:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    config_path = repo / name / CONFIG
    if not config_path.exists():
        raise DeployError(f"{config_path} is missing: the manifest lists {name}, but the repository has no config "
                          "for it; rebuild the repository")
    try:
        config = text_format.Parse(config_path.read_text(), pb.ModelConfig())
    except text_format.ParseError as exc:
        raise DeployError(f"{config_path} is not a valid Triton model config ({exc})") from exc
    backend = config.backend or config.platform
    if not backend:
        raise DeployError(f"{config_path} names neither a backend nor a platform")
    delay = config.dynamic_batching.max_queue_delay_microseconds if config.HasField("dynamic_batching") else 0
    memory = entry.memory.model_peak_mb if entry.memory else None
    gpu = any(group.kind == pb.ModelInstanceGroup.KIND_GPU for group in config.instance_group)
    tensorrt = str(entry.runtime_info.get("version") or "") if backend in GPU_ONLY else ""
    return ServedModel(name, backend, int(delay), float(memory) if memory else None, entry.io.labels, entry.family,
                       entry.io.input_dims, gpu, tensorrt, tuple(sorted(config.cc_model_filenames)))
