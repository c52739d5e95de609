"""Shared fixtures: a small real CIFAR-10 archive, an isolated cache, and a tiny architecture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"
MINI_ARCHIVE = DATA_DIR / "cifar10-mini.tar.gz"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own decode cache, so none sees another's leftovers."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRITONZOO_CACHE", str(cache))
    return cache


@pytest.fixture
def mini_archive() -> Path:
    return MINI_ARCHIVE


@pytest.fixture
def tiny_arch(monkeypatch: pytest.MonkeyPatch) -> str:
    """A two-block CIFAR ResNet that trains and exports in well under a second."""
    from build.models import ARCHITECTURES
    from build.models.resnet import CifarResNet

    monkeypatch.setitem(ARCHITECTURES, "tiny", lambda n: CifarResNet([1, 1], [8, 16], n))
    return "tiny"


def full_data_spec() -> str | None:
    """The full dataset when the environment points at one (CI does), for the e2e tests."""
    return os.environ.get("TRITONZOO_DATA")
