"""A published-looking repository and a small fake of Triton for the gateway's unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from serving.gateway.app import create_app
from serving.gateway.errors import Unavailable
from serving.gateway.settings import GatewaySettings

MODELS = ("m_a", "m_b", "m_c")
LABELS = [f"class{i}" for i in range(10)]
ADMIN = {"X-API-Key": "admin-secret"}


class FakeTriton:
    """Predicts class (first pixel % 10); m_c, the 'candidate', disagrees on odd pixels. Can be 'down'."""

    def __init__(self) -> None:
        self.down = False
        self.failing: set[str] = set()
        self.loaded: set[str] = set(MODELS)
        self.calls: list[str] = []

    async def logits(self, model, batch: np.ndarray) -> np.ndarray:
        self.calls.append(model.name)
        if self.down or model.name in self.failing:
            raise Unavailable(f"Triton is unavailable: {model.name} down")
        first = batch.reshape(len(batch), -1)[:, 0].astype(int)
        if model.name == "m_c":
            first = first + (first % 2)
        return np.eye(10, dtype=np.float32)[first % 10] * 4.0

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


def write_repository(repo: Path, models=MODELS) -> Path:
    entries = {}
    for i, name in enumerate(models):
        (repo / name).mkdir(parents=True, exist_ok=True)
        (repo / name / "labels.txt").write_text("\n".join(LABELS) + "\n")
        entries[name] = {"variant": name, "runtime": "onnxruntime", "version": 1, "parent": "teacher",
                         "accuracy": {"top1": 0.9 - i / 100}, "size_mb": 10.0 + i, "max_batch_size": 8,
                         "io": {"input": "images", "input_dims": [3, 32, 32], "output": "logits",
                                "labels": "labels.txt"}}
    (repo / "manifest.json").write_text(json.dumps({"schema_version": 1, "models": entries}))
    return repo


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
    with TestClient(create_app(settings, triton)) as c:
        yield c
