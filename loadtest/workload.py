"""What the Locust users send: the models (names and tensor names from the manifest), each model's payload images at
its own input shape, and request bodies encoded once per kind. Kept apart from locustfile.py, which Locust (and its
gevent patching) must import first, so that this can be used and tested on its own."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loadtest.payloads import ModelIO, experiment_payloads, gateway_tensor, triton_grpc, triton_http


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


def load_workload(opts) -> Workload:
    from loadtest.images import load_payloads, payloads_for

    ios = model_ios(opts.tz_repo, opts.tz_models)
    names = [m.name for m in ios]
    if opts.tz_images_file:
        loaded = load_payloads(Path(opts.tz_images_file), opts.tz_images)
        images = loaded if isinstance(loaded, dict) else dict.fromkeys(names, loaded)
    elif opts.tz_data and opts.tz_repo:  # each model's own dataset where its card names one here, at its dims
        images = payloads_for(Path(opts.tz_repo), names, Path(opts.tz_data), opts.tz_images)
    elif opts.tz_data:
        raise SystemExit("locustfile: --tz-data needs --tz-repo, whose manifest gives each model's input shape")
    else:
        raise SystemExit("locustfile: give --tz-images-file or --tz-data (real test images)")
    missing = [n for n in names if n not in images]
    if missing:
        raise SystemExit(f"locustfile: {opts.tz_images_file} has no images for {missing}")
    host = (opts.host or "").removeprefix("http://").rstrip("/")
    return Workload(ios, images, host)


def model_ios(repo: str, models: str) -> list[ModelIO]:
    if not repo:
        names = [m for m in models.split(",") if m and m != "all"]
        if not names:
            raise SystemExit("locustfile: --tz-models is required (or --tz-repo with 'all')")
        return [ModelIO(n) for n in names]
    from serving.manifest import load_manifest

    manifest = load_manifest(Path(repo))
    names = sorted(manifest) if models in ("", "all") else models.split(",")
    missing = [n for n in names if n not in manifest]
    if missing:
        raise SystemExit(f"locustfile: models not in {repo}: {missing}")
    return [ModelIO(n, manifest[n].io.input, manifest[n].io.output) for n in names]
