"""Shipped training runs. A training run (distilling the student, pruning a network) is a function of its source
model, data and settings, so `invoke distill` and `invoke prune` run it once (on a GPU when there is one) and ship
the result in weights/, as `invoke train` ships the teacher. A build whose run has the same key loads that result
instead of training it again on 2 CPU cores."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from build.card import ModelCard, Preprocess
from build.data import Dataset
from build.data.dataset import default_cache_dir
from build.device import autocast, pick_device
from build.evaluate import torch_accuracy
from build.models import Classifier, load_weights, save_weights, write_provenance
from build.train import hardware_summary

Trainer = Callable[[], tuple[Classifier, dict]]  # a fresh run: the model and its record (final loss, metrics)


def run_key(recipe: Any, **inputs: Any) -> str:
    """The run's identity: its inputs and every setting of its recipe except whether to use a shipped result.

    The inputs are the networks it starts from and learns from (by their values), the classes it predicts and the
    size of its training split, never the data's bytes: the same dataset encoded otherwise (the official CIFAR-10
    release rather than this project's JPEG copy) loads the same runs, each of which records the checksum of the
    data it was trained on, and the build's report says when that differs from its own."""
    settings = {k: v for k, v in asdict(recipe).items() if k != "shipped"}
    blob = json.dumps({**inputs, "recipe": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def model_sha256(model: nn.Module) -> str:
    """A network's identity as the source of a run: its tensors' names, shapes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def run_folder(name: str) -> Path:
    """Where a shipped run keeps its checkpoint and validation curve while it trains: outside the work tree, in the
    cache, so that `invoke distill` or `invoke prune` run again with the same settings continues it."""
    return default_cache_dir() / "runs" / name


def shipped_path(weights_dir: Path, stem: str, key: str) -> Path:
    return weights_dir / f"{stem}_{key}.pt"


def shipped_teacher(card: ModelCard) -> Path:
    """The teacher file that `invoke distill` and `invoke prune` train from: a builtin card's weights."""
    if card.kind != "builtin" or card.weights is None:
        raise card.error("source", f"{card.source} is not a builtin network with weights",
                         "ship runs for builtin cards; the build trains other sources' runs itself")
    return card.weights


def load_or_train(path: Path | None, pre: Preprocess, train: Trainer) -> tuple[Classifier, dict, dict]:
    """The shipped result at `path` when it exists, else a fresh run: the model, its record and where it came from."""
    if path is not None and path.exists():
        model, meta = load_weights(path, pre)
        return model, meta, {"shipped": path.name, "trained_on": meta["hardware"],
                             "train_seconds": meta["train_seconds"], "data_checksum": meta.get("dataset_checksum")}
    model, record = train()
    return model, record, {"trained_in_build": True}


def origin_note(origin: dict) -> str:
    """What the build log says of a run: loaded from weights/ (nothing is reused silently), or trained here."""
    if "shipped" in origin:
        return (f"loaded the shipped {origin['shipped']} (trained on {origin['trained_on']} in "
                f"{origin['train_seconds'] / 60:.0f} min)")
    return f"trained in this build ({origin.get('train_seconds', 0)} s)"


def ship(model: Classifier, path: Path, data: Dataset, meta: dict, curve: Path | None = None) -> dict:
    """Save a run's result with its provenance and its validation and test accuracy in PyTorch; `curve`, the run's
    per-epoch validation log (build/fit.py), is kept beside it as `<stem>.val_log.jsonl`, the evidence its length
    was chosen on."""
    if curve is not None and curve.exists():
        shutil.copyfile(curve, path.with_suffix(".val_log.jsonl"))
    device = pick_device()
    meta = {**meta, "num_classes": len(data.classes), "classes": data.classes, "dataset_checksum": data.checksum,
            "hardware": hardware_summary(device), "torch": str(torch.__version__)}
    for split in ("val", "test"):
        meta[f"{split}_accuracy"] = torch_accuracy(model.to(device), getattr(data, split), device=device,
                                                   amp=autocast(device))
    save_weights(model.cpu(), path, meta)
    write_provenance(path, meta)
    return {**meta, "weights": str(path)}
