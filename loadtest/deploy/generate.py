"""`invoke k8s` with the load generator: serving's manifests (Triton, the gateway, autoscaling, monitors) and the
Locust pods, written together in one Kustomize base.

The two are put together here, not in serving/deploy: the Locust pods are the load generator's knowledge and
serving/ imports nothing from loadtest/, while loadtest/ may import serving/. A module rather than tasks.py, so that
the task stays thin and the tests generate exactly what the task does."""

from __future__ import annotations

from pathlib import Path

from loadtest.deploy.locust import ImageLoader, LocustPods, locust_objects
from serving.deploy.generate import K8sOptions, plan_for
from serving.deploy.kustomize import write_kustomize
from serving.deploy.repository import read_repository

LOCUST_FILE = "locust.yaml"  # in the base, after serving's own


def generate(repo_path: Path, out: Path, options: K8sOptions, locust: LocustPods | None,
             load_images: ImageLoader | None) -> list[Path]:
    """Read the repository, plan serving's objects and, unless `locust` is None, the Locust pods (in the project's
    image, options.image, as the gateway), write them all: the files written, for the task to list."""
    repo = read_repository(repo_path)
    plan = plan_for(repo, options)
    extra = {} if locust is None else {LOCUST_FILE: locust_objects(plan.site, repo, options.image, locust, load_images)}
    return write_kustomize(repo, out, plan, extra)
