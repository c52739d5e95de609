"""Shared fixtures: a small real CIFAR-10 archive, an isolated cache, and a tiny architecture."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TypeVar, cast

import pytest

from build.card import Preprocess

DATA_DIR = Path(__file__).parent / "data"
CIFAR = (3, 32, 32)  # the test archive's images, and the tiny networks' input
PRE = Preprocess(CIFAR, (125.307, 122.961, 113.8575), (62.985, 62.0925, 66.708))
MINI_ARCHIVE = DATA_DIR / "cifar10-mini.tar.gz"
ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def unused(kind: type[T]) -> T:
    """None in place of a `kind` that the code under test must not touch (a use fails at once), typed as `kind`."""
    return cast(T, None)


def present(value: T | None) -> T:
    """`value`, which the test expects to be there: asserted not None, for the checks that follow."""
    assert value is not None
    return value


# What provides each system tool a test may need; ./setup.sh installs them all.
TOOL_SOURCES = {"prometheus": "apt-get install prometheus", "promtool": "apt-get install prometheus",
                "wrk": "apt-get install wrk", "cc": "apt-get install gcc", "ip": "apt-get install iproute2",
                "taskset": "apt-get install util-linux"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_tool("wrk")`: skip locally when the tool is missing, but fail under CI (`CI` set),
    so that a CI run never passes by silently skipping what README's set-up promises to install."""
    for marker in item.iter_markers("needs_tool"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                message = f"{tool} not found: run ./setup.sh ({TOOL_SOURCES.get(tool, 'see README')})"
                if os.environ.get("CI"):
                    pytest.fail(f"CI is set and {message}", pytrace=False)
                pytest.skip(message)


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

    monkeypatch.setitem(ARCHITECTURES, "tiny", lambda n, in_channels=3: CifarResNet([1, 1], [8, 16], n, in_channels))
    return "tiny"


def full_data_spec() -> str | None:
    """The full dataset when the environment points at one (CI does), for the e2e tests."""
    return os.environ.get("TRITONZOO_DATA")


def card_for(weights: Path, name: str = "tiny", data: str | None = None, **fields):
    """A card for a builtin checkpoint (its architecture read from the file), as a test builds it in memory."""
    import torch

    from build.card import ModelCard

    arch = torch.load(weights, weights_only=True)["arch"]
    return ModelCard(name=name, source=f"builtin:{arch}", input=PRE.input, mean=PRE.mean, std=PRE.std,
                     weights=Path(weights), data=data, **fields)


def build_one(data, teacher: Path, repo: Path, variants: list[str], runtimes: list[str], options, log=None,
              name: str = "tiny", left_out: dict[str, str] | None = None):
    """Build one card of `teacher` on an already loaded dataset: the ZooBuild of that card."""
    from build.zoo import build_zoo

    card = card_for(teacher, name)
    return build_zoo([card], repo, variants, runtimes, options, log or (lambda _: None), data={name: data},
                     left_out=left_out)[0]


def models_of(repo: Path) -> dict[str, dict]:
    """The manifest's models as the flat dicts the build recorded."""
    from serving.manifest import read_manifest

    return {name: entry.to_dict() for name, entry in read_manifest(repo).models.items()}
