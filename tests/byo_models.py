"""A user's own network, defined outside build/: what a card's `torch:` source and the ONNX source tests load."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class SmallNet(nn.Module):
    """Any architecture the zoo has never seen: two convolutions and a linear head, for inputs of any size."""

    def __init__(self, num_classes: int = 4, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def small_net(num_classes: int = 4, channels: int = 3) -> SmallNet:
    torch.manual_seed(0)
    return SmallNet(num_classes, channels)


def export_float_onnx(model: nn.Module, path: Path, shape: tuple[int, int, int]) -> Path:
    """Plain torch.onnx.export of a model that takes normalised float NCHW, as users export theirs."""
    example = torch.zeros((1, *shape))
    torch.onnx.export(model.eval(), (example,), str(path), input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    return path


def subset_archive(source: Path, classes: list[str], out: Path, per_class: dict[str, int] | None = None) -> Path:
    """An ImageFolder archive with only `classes` of `source`: a dataset with another class count; `per_class`: at
    most this many images of each class in each split (e.g. {"train": 170, "test": 50})."""
    import tarfile
    from collections import Counter

    taken: Counter[tuple[str, str]] = Counter()
    with tarfile.open(source) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            parts = member.name.split("/")
            if not (member.isfile() and len(parts) >= 3 and parts[-2] in classes):
                continue
            split = parts[-3]
            if per_class is not None and taken[split, parts[-2]] >= per_class.get(split, 0):
                continue
            taken[split, parts[-2]] += 1
            dst.addfile(member, src.extractfile(member))
    return out


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ImageNetResNet(nn.Module):
    """ResNet-18 as ImageNet models have it (7x7/2 stem, 3x3/2 max-pool, 2-2-2-2 basic blocks; torchvision's layout
    without torchvision), at any width: 1.8 GMACs at 224x224 with the standard widths (64-512)."""

    def __init__(self, num_classes: int = 10, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = width
        for i, w in enumerate(widths):
            layers += [_Block(cin, w, 1 if i == 0 else 2), _Block(w, w, 1)]
            cin = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def imagenet_resnet18(num_classes: int = 10, width: int = 64) -> ImageNetResNet:
    torch.manual_seed(0)
    return ImageNetResNet(num_classes, width)
