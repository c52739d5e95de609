"""Short training runs inside a build: fine-tuning after pruning, and knowledge distillation.

The loss is Hinton et al.'s: KL divergence between temperature-softened student and teacher
distributions (scaled by T^2), blended with cross-entropy on the labels. Teacher logits come
precomputed (see `BuildContext.soft_targets`), so the teacher never runs inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from build.data import ImageSet
from build.device import autocast, configure_threads, pick_device
from build.train import augment


@dataclass(frozen=True)
class FitConfig:
    steps: int
    lr: float = 0.05
    batch_size: int = 128
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float = 0.9  # weight of the soft-target term; 0 is plain cross-entropy
    seed: int = 0


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
            alpha: float) -> torch.Tensor:
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student, labels)


def batches(n: int, batch_size: int, steps: int, gen: torch.Generator):
    """`steps` index batches, walking fresh permutations of the n examples epoch after epoch."""
    order = torch.randperm(n, generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        yield order[pos:pos + batch_size]
        pos += batch_size


def fit(model: nn.Module, data: ImageSet, soft_targets: np.ndarray, cfg: FitConfig, desc: str) -> float:
    """Train `model` in place for cfg.steps steps; return the mean loss over the last tenth of them."""
    configure_threads()
    device = pick_device()
    gen = torch.Generator().manual_seed(cfg.seed)
    # Module.to(memory_format=...) is documented and works; torch's overloads of Module.to omit it.
    model.to(device).to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    # On a GPU the whole set moves there once: cropping on the CPU would leave it idle.
    images, labels = torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).long().to(device)
    soft = torch.from_numpy(soft_targets).to(device)
    batch_size = min(cfg.batch_size, len(data))
    losses = []
    bar = tqdm(batches(len(data), batch_size, cfg.steps, gen), total=cfg.steps, desc=desc, unit="step", leave=False)
    for idx in bar:
        idx = idx.to(device)
        x = augment(images[idx], gen).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(x)
        loss = kd_loss(logits.float(), soft[idx], labels[idx], cfg.temperature, cfg.alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.cpu().eval()
    tail = losses[-max(1, len(losses) // 10):]
    return float(np.mean(tail))
