"""ResNet-18 as ImageNet classifiers have it, without torchvision: the example `torch:` source of a network shaped
for 224-pixel images (`invoke bench-byo`, the 224-pixel end-to-end test). A user's own network would live in the
user's own package; this one is here so that the project can time such a build on its own."""

from __future__ import annotations

import torch
from torch import nn


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
