"""MobileNetV2 (Sandler et al. 2018) sized for 32x32 inputs: depthwise-separable inverted residuals with linear
bottlenecks. As in the usual CIFAR adaptation, the stem and the first two downsampling stages keep stride 1, so a
32x32 image reaches the last stage at 4x4 rather than 1x1."""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, blocks n, stride of the first block s), the paper's table 2 with CIFAR strides
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        expand = [conv_bn(cin, hidden, 1)] if expansion != 1 else []
        self.block = nn.Sequential(*expand, conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                   conv_bn(hidden, cout, 1, act=False))  # linear bottleneck: no ReLU here
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0, last: int = 1280) -> None:
        super().__init__()
        cin = _round(32 * width)
        layers: list[nn.Module] = [conv_bn(in_channels, cin, 3)]
        for t, c, n, s in SETTINGS:
            cout = _round(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _round(channels: float, divisor: int = 8) -> int:
    """Channel counts rounded to a multiple of 8, as the paper's width multiplier does, never below 90%."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def mobilenetv2(num_classes: int, in_channels: int = 3) -> MobileNetV2:
    """Width 0.5, 640-wide head: 29M MACs and 0.59M parameters at 32x32 (ResNet-20: 41M, 0.27M), a student family
    whose cost is in depthwise convolutions rather than dense 3x3 ones."""
    return MobileNetV2(num_classes, in_channels, width=0.5, last=640)
