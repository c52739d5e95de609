"""Architectures by name, and the classifier wrapper that puts preprocessing inside the graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from build.errors import ZooError
from build.models.resnet import resnet18, resnet20

ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": resnet18,
    "resnet20": resnet20,
}

# CIFAR-10 channel statistics, scaled to raw 0-255 pixels.
MEAN = (0.4914 * 255, 0.4822 * 255, 0.4465 * 255)
STD = (0.2470 * 255, 0.2435 * 255, 0.2616 * 255)


class Classifier(nn.Module):
    """Takes raw uint8 NCHW pixels, as clients send them, and returns logits."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images.float() - self.mean) / self.std)


def build_classifier(arch: str, num_classes: int = 10) -> Classifier:
    if arch not in ARCHITECTURES:
        raise ZooError(f"unknown architecture '{arch}'; choose one of {sorted(ARCHITECTURES)}")
    return Classifier(ARCHITECTURES[arch](num_classes))


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


def load_weights(path: Path) -> tuple[Classifier, dict]:
    """Rebuild the classifier a weights file describes; a mismatch is a one-line ZooError."""
    if not Path(path).exists():
        raise ZooError(f"teacher weights not found: {path}; train them with `invoke train` or pass --teacher")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ZooError(f"cannot read weights file {path} ({exc}); it is corrupt or not a tritonzoo checkpoint") from exc
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    model = build_classifier(meta.get("arch", "resnet18"), int(meta.get("num_classes", 10)))
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        if meta.get("channel_pruned"):
            take_widths(model, state)
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ZooError(
            f"weights file {path} does not fit architecture '{meta.get('arch', 'resnet18')}' ({first}); "
            "retrain with `invoke train` or point --teacher at a matching checkpoint"
        ) from exc
    return model.eval(), meta
