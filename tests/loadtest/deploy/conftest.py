"""The Locust pods generated beside serving's manifests, for the repository of tests/serving/deploy."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.analysis.shapes import ConstantPlan
from loadtest.deploy.generate import generate
from loadtest.deploy.locust import LocustPods
from loadtest.runs.plan import LoadPlan
from serving.deploy.generate import K8sOptions
from tests.serving.deploy.conftest import fake_images, write_repository


def pods(user: str = "gateway", shape: str = "constant", models: tuple[str, ...] = (), workers: int = 2,
         users: int = 8, seconds: float = 60.0, rate: float = 0.0) -> LocustPods:
    """The Locust pods as `invoke k8s` makes them of its --locust-* options (its defaults here)."""
    return LocustPods(LoadPlan(models=models, shape=shape, constant=ConstantPlan(users, seconds, rate)), user, workers)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "repo")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests for the repository, from S3, with the Locust pods (once per module: the tests only read them)."""
    root = tmp_path_factory.mktemp("k8s")
    out = root / "k8s"
    options = K8sOptions("s3://zoo-bucket/repository", monitor_labels="release=kps")
    generate(write_repository(root / "repo"), out, options, pods(), fake_images)
    return out
