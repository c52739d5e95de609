"""In-process torch inference over an ImageSet."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from build.data import ImageSet


@torch.inference_mode()
def torch_logits(model: nn.Module, images: np.ndarray, batch_size: int = 500,
                 device: torch.device | None = None, amp: torch.autocast | None = None,
                 desc: str | None = None) -> np.ndarray:
    device = device or torch.device("cpu")
    model.eval()
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False) if desc else starts:
        x = torch.from_numpy(images[start:start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
        if amp is None:
            out.append(model(x).float().cpu())
        else:
            with amp:
                out.append(model(x).float().cpu())
    return torch.cat(out).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def torch_accuracy(model: nn.Module, data: ImageSet, **kwargs) -> float:
    return accuracy(torch_logits(model, data.images, **kwargs), data.labels)
