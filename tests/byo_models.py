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


# The ImageNet-shaped example network and the subset helper live in the package (`invoke bench-byo` uses them);
# the tests name them from here, as a user's module would be named by a card.
from build.data.subset import subset_archive  # noqa: E402
from build.models.imagenet import ImageNetResNet, imagenet_resnet18  # noqa: E402

__all__ = ["ImageNetResNet", "SmallNet", "export_float_onnx", "imagenet_resnet18", "small_net", "subset_archive"]
