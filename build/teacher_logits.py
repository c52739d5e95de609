"""Teacher logits on the training images, for distillation and fine-tuning with soft targets.

Running the teacher inside the training loop would cost more than training a small student, so
its logits are computed once per (teacher, dataset) and kept in the data cache. They are taken on
the unaugmented images; the student sees random crops and flips of them, which barely move the
teacher's prediction.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import numpy as np
from torch import nn

from build.data.dataset import default_cache_dir
from build.device import autocast, configure_threads, pick_device
from build.evaluate import torch_logits


def teacher_logits(teacher: nn.Module | Callable[[np.ndarray], np.ndarray], images: np.ndarray, teacher_sha256: str,
                   data_checksum: str) -> np.ndarray:
    """Logits on `images`, the first len(images) training images of the dataset `data_checksum` names; `teacher` is
    a torch network, or a function of images (an ONNX source run by ONNX Runtime)."""
    key = f"{teacher_sha256}-{data_checksum}-{len(images)}"
    path = default_cache_dir() / f"teacher-logits-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    if isinstance(teacher, nn.Module):
        configure_threads()
        device = pick_device()
        logits = torch_logits(teacher.to(device), images, device=device, amp=autocast(device), desc="teacher logits")
        teacher.cpu()
    else:
        logits = teacher(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
    np.save(tmp, logits)
    tmp.replace(path)
    return logits
