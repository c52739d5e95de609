"""Shipped students. A distillation run is a function of its teacher, data and settings, so `invoke distill` runs
it once (on a GPU when there is one) and ships the result in weights/, as `invoke train` ships the teacher. A build
whose run has the same key loads that student instead of training it again on 2 CPU cores."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from build.data import Dataset
from build.data.dataset import sha256_file
from build.device import autocast, pick_device
from build.evaluate import torch_accuracy
from build.models import load_weights, save_weights, write_provenance
from build.teacher_logits import teacher_logits
from build.train import hardware_summary

if TYPE_CHECKING:
    from build.steps.distill import DistillConfig


def run_key(teacher_sha256: str, data_checksum: str, train_images: int, steps: int, cfg: DistillConfig) -> str:
    recipe = {k: v for k, v in asdict(cfg).items() if k != "shipped"}
    blob = json.dumps({"teacher": teacher_sha256, "data": data_checksum, "train_images": train_images,
                       "steps": steps, "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def student_path(weights_dir: Path, student: str, key: str) -> Path:
    return weights_dir / f"{student}_distilled_{key}.pt"


def distill_student(teacher_path: Path, data: Dataset, cfg: DistillConfig, weights_dir: Path) -> dict:
    """Train the student the default build would, on the whole training split; save it with its provenance."""
    from build.steps.distill import distill

    teacher, _ = load_weights(teacher_path)
    sha, train = sha256_file(teacher_path), data.train
    soft = teacher_logits(teacher, train.images, sha, data.checksum)
    steps = cfg.steps(len(train))
    start = time.perf_counter()
    student, loss = distill(cfg, steps, train, soft, len(data.classes), f"distil into {cfg.student}")
    seconds = time.perf_counter() - start
    device = pick_device()
    meta = {"arch": cfg.student, "num_classes": len(data.classes), "classes": data.classes,
            "run_key": run_key(sha, data.checksum, len(train), steps, cfg), "teacher_sha256": sha,
            "dataset_checksum": data.checksum, "train_images": len(train), "steps": steps, "config": asdict(cfg),
            "final_loss": loss, "train_seconds": round(seconds), "hardware": hardware_summary(device),
            "torch": str(torch.__version__)}
    for split in ("val", "test"):
        meta[f"{split}_accuracy"] = torch_accuracy(student.to(device), getattr(data, split), device=device,
                                                   amp=autocast(device))
    path = student_path(weights_dir, cfg.student, meta["run_key"])
    save_weights(student.cpu(), path, meta)
    write_provenance(path, meta)
    return {**meta, "weights": str(path)}
