"""Triton `config.pbtxt` built through Triton's own model_config protobuf, never string templates."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from serving.manifest import ModelIO

LABELS_FILE = "labels.txt"


INPUT, OUTPUT = "images", "logits"


def model_io(input_dims: tuple[int, ...]) -> ModelIO:
    """The contract clients see, as the manifest records it: raw uint8 NCHW pixels of the card's (C, H, W) in,
    logits out."""
    return ModelIO(INPUT, tuple(input_dims), OUTPUT, labels=LABELS_FILE)


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 64
    max_queue_delay_us: int = 200
    preferred_batch_sizes: tuple[int, ...] = ()
    instance_count: int = 1


@dataclass(frozen=True)
class RuntimeFields:
    """What a runtime adds: platform or backend, the model file name, its parameters, where instances run."""

    platform: str = ""
    backend: str = ""
    filename: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    instance_kind: int = pb.ModelInstanceGroup.KIND_CPU
    cc_model_filenames: dict[str, str] = field(default_factory=dict)  # GPU compute capability -> file (plans)


def build_config(name: str, runtime: RuntimeFields, io: ModelIO, num_classes: int,
                 batching: Batching = Batching()) -> pb.ModelConfig:
    cfg = pb.ModelConfig(name=name, platform=runtime.platform, backend=runtime.backend,
                         max_batch_size=batching.max_batch_size, default_model_filename=runtime.filename)
    cfg.version_policy.latest.num_versions = 1
    cfg.input.append(pb.ModelInput(name=io.input, data_type=pb.TYPE_UINT8, dims=list(io.input_dims),
                                   format=pb.ModelInput.FORMAT_NCHW))
    cfg.output.append(pb.ModelOutput(name=io.output, data_type=pb.TYPE_FP32, dims=[num_classes],
                                     label_filename=io.labels))
    cfg.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    cfg.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes)
    cfg.instance_group.append(pb.ModelInstanceGroup(count=batching.instance_count, kind=runtime.instance_kind))
    cfg.cc_model_filenames.update(runtime.cc_model_filenames)
    for key, value in runtime.parameters.items():
        cfg.parameters[key].string_value = value
    return cfg


def to_pbtxt(cfg: pb.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def from_pbtxt(text: str) -> pb.ModelConfig:
    return text_format.Parse(text, pb.ModelConfig())
