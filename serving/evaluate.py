"""Accuracy and latency of every published model, measured through the server."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.client import TritonClassifier
from serving.manifest import ModelEntry, load_manifest
from serving.triton import TritonConfig, TritonServer


@dataclass(frozen=True)
class ServedResult:
    model: str
    variant: str
    runtime: str
    build_accuracy: float | None  # in-process, recorded by the build on the same images
    served_accuracy: float
    images: int
    p50_ms: float
    p99_ms: float


TestSet = tuple[np.ndarray, np.ndarray]  # uint8 images (N, C, H, W) and their class indices (N,)


def evaluate_served(client: TritonClassifier, manifest: Mapping[str, ModelEntry], images: np.ndarray,
                    labels: np.ndarray, latency_requests: int = 200,
                    test_sets: Mapping[str, TestSet] | None = None) -> list[ServedResult]:
    """Every model on its family's test set: `test_sets[family]`, else `images` and `labels`."""
    sets = assign_test_sets(manifest, (images, labels), test_sets or {})
    results = []
    for name, entry in sorted(manifest.items()):
        images, labels = sets[name]
        logits = client.predict_all(name, images)
        lat = client.latencies_ms(name, images, latency_requests)
        results.append(ServedResult(
            model=name, variant=entry.variant, runtime=entry.runtime,
            build_accuracy=build_accuracy(entry.accuracy, len(images)),
            served_accuracy=float((logits.argmax(1) == labels).mean()), images=len(images),
            p50_ms=float(np.median(lat)), p99_ms=float(np.percentile(lat, 99)),
        ))
    return results


def assign_test_sets(manifest: Mapping[str, ModelEntry], default: TestSet,
                     test_sets: Mapping[str, TestSet]) -> dict[str, TestSet]:
    """Each model's test set, checked against its input before anything is sent: a family's images of another
    shape mean the wrong test set, and Triton would only say 'unexpected shape'."""
    chosen = {name: test_sets.get(entry.family, default) for name, entry in manifest.items()}
    wrong = [f"{name} takes {list(entry.io.input_dims)}, its test images are {list(chosen[name][0].shape[1:])}"
             for name, entry in sorted(manifest.items()) if tuple(chosen[name][0].shape[1:]) != entry.io.input_dims]
    if wrong:
        raise ValueError(f"{'; '.join(wrong)}: give each family its own test set")
    return chosen


def build_accuracy(recorded: dict, images: int) -> float | None:
    """The build's top-1 on the same first `images` test images, if it recorded that many."""
    if recorded.get("images") == images:
        return recorded["top1"]
    prefix = recorded.get("prefix", {})
    return prefix["top1"] if prefix.get("images") == images else None


def format_table(results: list[ServedResult]) -> str:
    header = f"{'model':<40} {'variant':<22} {'runtime':<14} {'acc (build)':>11} {'acc (served)':>12} " \
             f"{'images':>7} {'p50 ms':>8} {'p99 ms':>8}"
    rows = [
        f"{r.model:<40} {r.variant:<22} {r.runtime:<14} {_pct(r.build_accuracy):>11} {r.served_accuracy:>12.2%} "
        f"{r.images:>7} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header), *rows])


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def run_served_evaluation(repo: Path, images: np.ndarray, labels: np.ndarray, triton_url: str | None = None,
                          latency_requests: int = 200, test_sets: Mapping[str, TestSet] | None = None) -> str:
    """Evaluate every model in the manifest through Triton: an external one, or one started here. `test_sets`
    gives a family its own test images and labels; `images` and `labels` serve every other family."""
    manifest = load_manifest(repo)
    assign_test_sets(manifest, (images, labels), test_sets or {})  # refuse before starting a server
    server = nullcontext() if triton_url else TritonServer(TritonConfig.on_free_ports(repo))
    with server as running:
        url = triton_url or running.cfg.grpc_url
        client = TritonClassifier(url, names={m: (e.io.input, e.io.output) for m, e in manifest.items()})
        try:
            return format_table(evaluate_served(client, manifest, images, labels, latency_requests, test_sets))
        finally:
            client.close()
