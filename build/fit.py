"""Short training runs inside a build: fine-tuning after pruning, and knowledge distillation.

The loss is Hinton et al.'s: KL divergence between temperature-softened student and teacher
distributions (scaled by T^2), blended with cross-entropy on the labels. Teacher logits come
precomputed (see `BuildContext.soft_targets`), so the teacher never runs inside the loop.

A run given a `run_dir` checkpoints there every few minutes and at the end, and a later call with the same
folder and settings continues from the checkpoint: the long shipped runs (`invoke distill`, `invoke prune`)
survive an interrupted session, and their validation curve is logged beside the checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from build.data import ImageSet
from build.device import autocast, configure_threads, pick_device
from build.errors import ZooError
from build.evaluate import torch_accuracy
from build.train import augment

CHECKPOINT_SECONDS = 300.0  # at most this much work is lost when a run is interrupted


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


class Batches:
    """Index batches walking fresh permutations of the n examples epoch after epoch; its state is a checkpoint's."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator) -> None:
        self.n, self.batch_size, self.gen = n, batch_size, gen
        self.order, self.pos = torch.randperm(n, generator=gen), 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.gen), 0
        self.pos += self.batch_size
        return self.order[self.pos - self.batch_size:self.pos]

    @property
    def epochs_done(self) -> bool:
        """True right after a batch that ended an epoch."""
        return self.pos + self.batch_size > self.n

    def state_dict(self) -> dict:
        return {"order": self.order, "pos": self.pos, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.pos = state["order"], state["pos"]
        self.gen.set_state(state["gen"])


class Checkpoint:
    """A run's resumable state in `run_dir`: model, optimiser, schedule, sampler and losses."""

    def __init__(self, run_dir: Path, cfg: FitConfig) -> None:
        self.path, self.log, self.cfg = run_dir / "fit.pt", run_dir / "log.jsonl", asdict(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.saved_at = self.started = time.monotonic()
        self.seconds_before = 0.0  # training time of the processes that ran it before this one (resumed runs)

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer, sched, sampler: Batches) -> tuple[int, list]:
        """The step to continue from and the losses so far; (0, []) for a new run."""
        if not self.path.exists():
            return 0, []
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state["config"] != self.cfg:
            raise ZooError(f"checkpoint {self.path} was made with {state['config']}, not {self.cfg}; "
                           "remove its folder to start over")
        model.load_state_dict(state["model"])  # a pruned stage's model arrives pruned to the checkpoint's widths
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        sampler.load_state_dict(state["sampler"])
        self.seconds_before = state.get("seconds", 0.0)  # checkpoints before this field have none: counted from here
        return state["step"], state["losses"]

    def due(self, step: int, total: int) -> bool:
        return step == total or time.monotonic() - self.saved_at > CHECKPOINT_SECONDS

    def save(self, step: int, model: nn.Module, opt: torch.optim.Optimizer, sched, sampler: Batches,
             losses: list) -> None:
        seconds = self.seconds_before + time.monotonic() - self.started
        state = {"config": self.cfg, "step": step, "losses": losses, "seconds": seconds, "model": model.state_dict(),
                 "opt": opt.state_dict(), "sched": sched.state_dict(), "sampler": sampler.state_dict()}
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)
        self.saved_at = time.monotonic()

    def record(self, entry: dict) -> None:
        with self.log.open("a") as f:
            f.write(json.dumps(entry) + "\n")


def run_seconds(run_dir: Path) -> float:
    """Training time of the run in `run_dir` (its stages' too) over every process that ran it, from the seconds its
    checkpoints keep: a run resumed across sessions is not timed by its last process alone."""
    return sum(torch.load(p, map_location="cpu", weights_only=True).get("seconds", 0.0)
               for p in sorted(run_dir.rglob("fit.pt")))


def fit(model: nn.Module, data: ImageSet, soft_targets: np.ndarray, cfg: FitConfig, desc: str,
        run_dir: Path | None = None, val: ImageSet | None = None) -> float:
    """Train `model` in place for cfg.steps steps; return the mean loss over the last tenth of them. With `run_dir`,
    resumable from there; with `val`, its accuracy is logged there after every epoch."""
    configure_threads()
    device = pick_device()
    gen = torch.Generator().manual_seed(cfg.seed)
    # Module.to(memory_format=...) is documented and works; torch's overloads of Module.to omit it.
    model.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    sampler = Batches(len(data), min(cfg.batch_size, len(data)), gen)
    ckpt = Checkpoint(run_dir, cfg) if run_dir else None
    start, losses = ckpt.restore(model, opt, sched, sampler) if ckpt else (0, [])
    model.to(device)
    opt.load_state_dict(opt.state_dict())  # moves a restored momentum to the model's device
    # On a GPU the whole set moves there once: cropping on the CPU would leave it idle.
    images, labels = torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).long().to(device)
    soft = torch.from_numpy(soft_targets).to(device)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=desc, unit="step", leave=False)
    for step in bar:
        idx = next(sampler).to(device)
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
        if ckpt and val is not None and sampler.epochs_done:
            _log_epoch(ckpt, model, val, device, step + 1, losses, sampler)
        if ckpt and ckpt.due(step + 1, cfg.steps):
            ckpt.save(step + 1, model, opt, sched, sampler, losses)
    model.cpu().eval()
    tail = losses[-max(1, len(losses) // 10):]
    return float(np.mean(tail))


def _log_epoch(ckpt: Checkpoint, model: nn.Module, val: ImageSet, device: torch.device, step: int, losses: list,
               sampler: Batches) -> None:
    """The validation curve that chooses a recipe's length; the test set is never looked at during a run."""
    acc = torch_accuracy(model.eval(), val, device=device, amp=autocast(device))
    model.train()
    ckpt.record({"step": step, "epoch": round(step * sampler.batch_size / sampler.n, 2), "val_accuracy": round(acc, 4),
                 "loss": round(float(np.mean(losses[-100:])), 4), "time": round(time.time())})
