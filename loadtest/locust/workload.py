"""What the Locust users send: the models (names and tensor names from the manifest), each model's payload images at
its own input shape, and request bodies encoded once per kind. Kept apart from locustfile.py, which Locust (and its
gevent patching) must import first, so that this can be used and tested on its own."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loadtest.protocol.payloads import ModelIO, experiment_payloads, gateway_tensor, triton_grpc, triton_http
from loadtest.runs.plan import LoadPlan


@dataclass
class Workload:
    """What every user of this process sends: models, each model's images (its input shape), and request bodies
    encoded once per kind."""

    models: list[ModelIO]
    images: dict[str, np.ndarray]  # model -> its payload images, uint8 (N, *its input dims)
    host: str = ""  # Triton's host:port, for the Host header of ready-made HTTP requests
    _payloads: dict[tuple[str, str], list] = field(default_factory=dict)

    def payloads(self, kind: str, model: ModelIO) -> list:
        key = (kind, model.name)
        if key not in self._payloads:
            images = self.images[model.name]
            encode = {"http": lambda: triton_http(model, images, self.host),
                      "grpc": lambda: triton_grpc(model, images),
                      "gateway": lambda: gateway_tensor(images)}[kind]
            self._payloads[key] = encode()
        return self._payloads[key]

    def cycle(self, kind: str):
        """Endless (model, payload) pairs: models side by side, images in turn, each user from its own offset."""
        start = random.randrange(len(self.images[self.models[0].name]))
        for i in itertools.count(start):
            model = self.models[i % len(self.models)]
            payloads = self.payloads(kind, model)
            yield model, payloads[(i // len(self.models)) % len(payloads)]

    def experiment_cycle(self):
        """Endless payloads for an A/B experiment over these models (the arms), each user from its own offset."""
        if ("experiment", "") not in self._payloads:
            self._payloads["experiment", ""] = experiment_payloads({m.name: self.images[m.name] for m in self.models})
        payloads = self._payloads["experiment", ""]
        for i in itertools.count(random.randrange(len(payloads))):
            yield payloads[i % len(payloads)]


def load_workload(plan: LoadPlan, host: str | None) -> Workload:
    """The workload of a plan; `host` is Locust's --host (Triton's, for the Host header of ready-made requests)."""
    from loadtest.protocol.images import load_payloads, payloads_for

    ios = model_ios(plan.repo, plan.models)
    names = [m.name for m in ios]
    if plan.images_file:
        loaded = load_payloads(Path(plan.images_file), plan.images)
        images = loaded if isinstance(loaded, dict) else dict.fromkeys(names, loaded)
    elif plan.data and plan.repo:  # each model's own dataset where its card names one here, at its dims
        images = payloads_for(Path(plan.repo), names, Path(plan.data), plan.images)
    elif plan.data:
        raise SystemExit("locustfile: the plan's data needs its repo, whose manifest gives each model's input shape")
    else:
        raise SystemExit("locustfile: the plan gives neither images_file nor data (real test images)")
    missing = [n for n in names if n not in images]
    if missing:
        raise SystemExit(f"locustfile: {plan.images_file} has no images for {missing}")
    return Workload(ios, images, (host or "").removeprefix("http://").rstrip("/"))


def model_ios(repo: str, models: tuple[str, ...]) -> list[ModelIO]:
    if not repo:
        if not models:
            raise SystemExit("locustfile: the plan names no models (give them, or a repo to take all of)")
        return [ModelIO(n) for n in models]
    from serving.manifest import load_manifest

    manifest = load_manifest(Path(repo))
    names = list(models) or sorted(manifest)
    missing = [n for n in names if n not in manifest]
    if missing:
        raise SystemExit(f"locustfile: models not in {repo}: {missing}")
    return [ModelIO(n, manifest[n].io.input, manifest[n].io.output) for n in names]
