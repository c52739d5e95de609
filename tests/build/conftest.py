"""Fixtures for build tests: a tiny teacher checkpoint and a micro student architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

from build.data import load_dataset
from build.models import ARCHITECTURES, build_classifier, save_weights
from build.models.resnet import CifarResNet
from tests.conftest import CIFAR, PRE


@pytest.fixture
def teacher(tmp_path: Path, tiny_arch: str, mini_archive: Path) -> Path:
    classes = load_dataset(str(mini_archive), CIFAR).classes
    path = tmp_path / "teacher.pt"
    save_weights(build_classifier(tiny_arch, 10, PRE), path, {"arch": tiny_arch, "num_classes": 10, "classes": classes,
                                                      "test_accuracy": 0.1})
    return path


@pytest.fixture
def micro_student(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(ARCHITECTURES, "micro", lambda n, in_channels=3: CifarResNet([1], [4], n, in_channels))
    return "micro"
