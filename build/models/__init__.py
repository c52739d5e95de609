"""Architectures by name, and the classifier wrapper that puts preprocessing inside the graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from build.card import Preprocess
from build.errors import ZooError
from build.models.mobilenet import mobilenetv2
from build.models.resnet import resnet18, resnet20
from build.models.stem import shaped_for
from build.models.widenet import widenet

# name -> factory(num_classes, in_channels)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet20": resnet20,
    "mobilenetv2": mobilenetv2,
    "widenet": widenet,
}


class Classifier(nn.Module):
    """Takes raw uint8 NCHW pixels, as clients send them, and returns logits: the card's preprocessing is inside."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, backbone: nn.Module, pre: Preprocess, arch: str | None = None) -> None:
        super().__init__()
        self.backbone, self.pre = backbone, pre
        self.arch = arch  # the builtin architecture's name; None for a user's own module
        shape = (1, len(pre.mean), 1, 1)
        self.register_buffer("mean", torch.tensor(pre.mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(pre.std).view(shape), persistent=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.pre.input

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros((batch, *self.pre.input), dtype=torch.uint8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images.float() - self.mean) / self.std)


def build_classifier(arch: str, num_classes: int, pre: Preprocess) -> Classifier:
    if arch not in ARCHITECTURES:
        raise ZooError(f"unknown architecture '{arch}'; choose one of {sorted(ARCHITECTURES)}")
    size = min(pre.input[1:])
    return Classifier(shaped_for(ARCHITECTURES[arch], num_classes, pre.channels, size), pre, arch)


def save_weights(model: Classifier, path: Path, meta: dict) -> None:
    """FP16 state dict plus plain metadata: half the size, and loadable with weights_only=True."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": state, **meta}, tmp)
    tmp.replace(path)


def write_provenance(path: Path, meta: dict) -> None:
    """The checkpoint's metadata as readable JSON beside it (`.json`), so a shipped file documents itself."""
    path.with_suffix(".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "classes"}, indent=2) + "\n")


def take_widths(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize every layer to its saved tensors, so a channel-pruned network loads into its base architecture."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            saved = state.get(prefix + key)
            if saved is None or saved.shape == tensor.shape:
                continue
            if isinstance(tensor, nn.Parameter):
                setattr(module, key, nn.Parameter(torch.empty(saved.shape)))
            else:
                module.register_buffer(key, torch.empty(saved.shape))
        if isinstance(module, nn.Conv2d):
            module.out_channels, module.in_channels = module.weight.shape[0], module.weight.shape[1] * module.groups
        elif isinstance(module, nn.BatchNorm2d):
            module.num_features = module.weight.shape[0]
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape


def read_checkpoint(path: Path) -> dict:
    if not Path(path).exists():
        raise ZooError(f"teacher weights not found: {path}; train them with `invoke train` or pass --teacher")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ZooError(f"cannot read weights file {path} ({exc}); it is corrupt or not a tritonzoo checkpoint") from exc


def checkpoint_meta(path: Path) -> dict:
    """What a tritonzoo checkpoint says about itself: architecture, classes, accuracy, provenance."""
    return {k: v for k, v in read_checkpoint(path).items() if k != "state_dict"}


def load_weights(path: Path, pre: Preprocess) -> tuple[Classifier, dict]:
    """Rebuild the classifier a weights file describes, behind the card's preprocessing; a mismatch is a one-line
    ZooError."""
    blob = read_checkpoint(path)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    if "num_classes" not in meta and meta.get("classes"):
        meta["num_classes"] = len(meta["classes"])
    if "arch" not in meta or "num_classes" not in meta:
        raise ZooError(f"weights file {path} does not say its architecture and class count; it is not a tritonzoo "
                       "checkpoint (a torch source's plain state dict needs source = \"torch:...\")")
    model = build_classifier(meta["arch"], int(meta["num_classes"]), pre)
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        if meta.get("channel_pruned"):
            take_widths(model, state)
        if meta.get("batchnorm_folded"):  # a QAT run's network: its convolutions carry their batch norms
            from build.steps.qat import fold_batchnorm

            fold_batchnorm(model.eval())
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ZooError(
            f"weights file {path} does not fit architecture '{meta['arch']}' ({first}); "
            "retrain with `invoke train` or point --teacher at a matching checkpoint"
        ) from exc
    return model.eval(), meta
