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


def evaluate_served(client: TritonClassifier, manifest: Mapping[str, ModelEntry], test_sets: Mapping[str, TestSet],
                    latency_requests: int = 200) -> list[ServedResult]:
    """Every model whose family has a test set (`test_sets[family]`: its own images and labels), by name."""
    check_test_sets(manifest, test_sets)
    results = []
    for name, entry in sorted(manifest.items()):
        if entry.family not in test_sets:
            continue
        images, labels = test_sets[entry.family]
        logits = client.predict_all(name, images)
        lat = client.latencies_ms(name, images, latency_requests)
        results.append(ServedResult(
            model=name, variant=entry.variant, runtime=entry.runtime,
            build_accuracy=entry.accuracy.on(len(images)),
            served_accuracy=float((logits.argmax(1) == labels).mean()), images=len(images),
            p50_ms=float(np.median(lat)), p99_ms=float(np.percentile(lat, 99)),
        ))
    return results


def check_test_sets(manifest: Mapping[str, ModelEntry], test_sets: Mapping[str, TestSet]) -> None:
    """Each family's images must be of its models' input before anything is sent: other dims mean another family's
    test set, and Triton would only say 'unexpected shape'."""
    wrong = [f"{name} takes {list(entry.io.input_dims)}, the test images of family {entry.family} are "
             f"{list(test_sets[entry.family][0].shape[1:])}" for name, entry in sorted(manifest.items())
             if entry.family in test_sets and tuple(test_sets[entry.family][0].shape[1:]) != entry.io.input_dims]
    if wrong:
        raise ValueError("; ".join(wrong))


def not_evaluated(manifest: Mapping[str, ModelEntry], test_sets: Mapping[str, TestSet]) -> list[str]:
    """Models of families given no test set (e.g. published by an earlier build of other cards)."""
    return sorted(name for name, entry in manifest.items() if entry.family not in test_sets)


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


def run_served_evaluation(repo: Path, test_sets: Mapping[str, TestSet], triton_url: str | None = None,
                          latency_requests: int = 200) -> str:
    """Evaluate the manifest's models through Triton (an external one, or one started here), each on its family's
    test set: `test_sets` maps a family (a card's name) to its images and labels. Models of other families are
    listed as not evaluated."""
    manifest = load_manifest(repo)
    check_test_sets(manifest, test_sets)  # refuse before starting a server
    server = nullcontext() if triton_url else TritonServer(TritonConfig.on_free_ports(repo))
    with server as running:
        url = running.cfg.grpc_url if running is not None else triton_url
        assert url is not None  # none started here: the external one
        client = TritonClassifier(url, names={m: (e.io.input, e.io.output) for m, e in manifest.items()})
        try:
            table = format_table(evaluate_served(client, manifest, test_sets, latency_requests))
        finally:
            client.close()
    skipped = not_evaluated(manifest, test_sets)
    return table + (f"\nnot evaluated (no test set for their family): {', '.join(skipped)}" if skipped else "")
