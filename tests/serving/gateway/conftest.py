"""A published-looking repository and a small fake of Triton for the gateway's unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from starlette.testclient import TestClient

from serving.gateway.app import create_app
from serving.gateway.errors import BadShape, Unavailable
from serving.gateway.settings import GatewaySettings
from serving.gateway.triton_client import TritonInference
from tests.serving.manifests import card, entry, write

MODELS = ("m_a", "m_b", "m_c")
LABELS = [f"class{i}" for i in range(10)]
ADMIN = {"X-API-Key": "admin-secret"}


class FakeTriton:
    """Predicts class (first pixel % classes); m_c, the 'candidate', disagrees on odd pixels. Can be 'down'.
    Like Triton, it refuses a batch that is not of the model's input dims."""

    def __init__(self) -> None:
        self.down = False
        self.failing: set[str] = set()
        self.loaded: set[str] = set(MODELS)
        self.calls: list[str] = []
        self.batches: list[tuple[str, np.ndarray]] = []

    async def logits(self, model, batch: np.ndarray) -> np.ndarray:
        self.calls.append(model.name)
        self.batches.append((model.name, batch))
        if self.down or model.name in self.failing:
            raise Unavailable(f"Triton is unavailable: {model.name} down")
        if batch.shape[1:] != model.dims:
            raise BadShape(f"{model.name} takes {model.dims}, got {batch.shape}")
        first = batch.reshape(len(batch), -1)[:, 0].astype(int)
        if model.name == "m_c":
            first = first + (first % 2)
        classes = len(model.labels) or 10
        return np.eye(classes, dtype=np.float32)[first % classes] * 4.0

    async def ready(self) -> bool:
        return not self.down

    async def model_ready(self, name: str) -> bool:
        return name in self.loaded

    async def load(self, name: str) -> None:
        self.loaded.add(name)

    async def unload(self, name: str) -> None:
        self.loaded.discard(name)

    async def close(self) -> None:
        pass


def as_triton(fake: FakeTriton) -> TritonInference:
    """The fake where the gateway takes a TritonInference: it has the methods the gateway calls on one Triton. Not a
    subclass: the gateway looks for check_health, which only several Triton replicas have, and must not find it."""
    return cast(TritonInference, fake)


@dataclass(frozen=True)
class Family:
    name: str
    dims: tuple[int, int, int]
    labels: tuple[str, ...]


M = Family("m", (3, 32, 32), tuple(LABELS))
WIDE = Family("wide", (3, 48, 48), tuple(f"class{i}" for i in range(5)))  # a subset of m's classes, by name
GRAY = Family("gray", (1, 28, 28), tuple(f"digit{i}" for i in range(4)))  # no class in common with m


def write_repository(repo: Path, models=MODELS, families: dict[str, Family] | None = None) -> Path:
    """Models named <family>_<variant>, each with its family's input dims and labels (m's by default)."""
    families = {f.name: f for f in (M, WIDE, GRAY)} | (families or {})
    entries = []
    for i, name in enumerate(models):
        family = families[name.split("_")[0]]
        (repo / name).mkdir(parents=True, exist_ok=True)
        (repo / name / "labels.txt").write_text("\n".join(family.labels) + "\n")
        entries.append(entry(name, family.name, variant=name.split("_", 1)[1], dims=family.dims, top1=0.9 - i / 100,
                             parent="teacher", size_mb=10.0 + i))
    cards = [card(f.name, dims=f.dims, classes=f.labels) for f in families.values()]
    return write(repo, entries, cards)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "repo")


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def settings(repo: Path, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(repository=repo, state_file=tmp_path / "state" / "experiments.json",
                           admin_keys=frozenset({"admin-secret"}), max_body_bytes=64 * 1024)


@pytest.fixture
def client(settings: GatewaySettings, triton: FakeTriton):
    with TestClient(create_app(settings, as_triton(triton))) as c:
        yield c
