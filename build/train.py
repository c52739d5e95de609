"""Teacher training: seeded, resumable, bf16 autocast + channels_last on CPU, CUDA when present."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from tqdm import tqdm

from build.card import Preprocess
from build.data import Dataset, ImageSet
from build.device import autocast, configure_threads, pick_device
from build.errors import ZooError
from build.evaluate import torch_accuracy
from build.hardware import cpu_model
from build.models import Classifier, build_classifier, read_checkpoint, save_weights, write_provenance


@dataclass(frozen=True)
class TrainConfig:
    """The defaults are the shipped teacher's recipe (weights/resnet18_cifar10.json), KellerJordan/cifar10-zoo's
    ResNet-18 baseline: 95 epochs with the LR peak at 20%, 195 s on an H200 (about 12 hours on 2 CPU cores)."""

    arch: str = "resnet18"
    epochs: int = 95
    warmup_epochs: int = 19  # one-cycle: LR rises for these epochs, then anneals to zero
    batch_size: int = 500
    lr: float = 0.2
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    cutout: int = 12  # side of a random square zeroed in each training image (DeVries & Taylor 2017); 0: off
    # one-cycle shape: "cos", or "linear" for the triangular schedule of fast CIFAR recipes
    anneal: Literal["cos", "linear"] = "linear"
    seed: int = 0
    device: str = "auto"
    # a second phase: start from these weights (a tritonzoo weights file of the same arch) with a fresh optimiser
    # and schedule, e.g. a shorter cycle after a finished run; "" starts from random initialisation
    init_from: str = ""


@dataclass(frozen=True)
class TrainResult:
    val_accuracy: float
    test_accuracy: float
    seconds: float
    weights: Path


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4, cutout: int = 0) -> torch.Tensor:
    """Random crop with zero padding plus horizontal flip (and cutout), vectorised over the batch."""
    b, _, h, w = x.shape
    dev = x.device  # the draws come from the CPU generator, so a run is the same on any device
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    index = torch.arange(b, device=dev)[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None]
    crops = padded[index[0], index[1], rows, cols]
    flip = (torch.rand(b, generator=gen) < 0.5).to(dev)
    out = torch.where(flip[:, None, None, None], crops.flip(3), crops)
    return apply_cutout(out, gen, cutout) if cutout else out


def apply_cutout(x: torch.Tensor, gen: torch.Generator, size: int) -> torch.Tensor:
    """Zero one size x size square per image, its centre anywhere in the image (so it may be clipped)."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=gen).to(x.device)
    cx = torch.randint(0, w, (b,), generator=gen).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_y = ((rows - cy[:, None]).abs() <= (size - 1) // 2)[:, :, None]
    in_x = ((cols - cx[:, None]).abs() <= (size - 1) // 2)[:, None, :]
    return x * ~(in_y & in_x)[:, None]


def initial_state(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """The FP32 state dict of a finished run's weights file, checked to be of `arch`."""
    blob = read_checkpoint(path)
    if blob.get("arch") != arch:
        raise ZooError(f"--init-from {path} holds a {blob.get('arch') or 'non-tritonzoo'} network, not {arch}")
    return {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}


class Trainer:
    """Owns model, optimiser, schedule and RNG, so that a checkpoint restores all of them."""

    def __init__(self, cfg: TrainConfig, data: Dataset, run_dir: Path, pre: Preprocess) -> None:
        configure_threads()
        self.cfg, self.data, self.run_dir = cfg, data, run_dir
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.model: Classifier = build_classifier(cfg.arch, len(data.classes), pre).to(self.device)
        if cfg.init_from:
            self.model.load_state_dict(initial_state(Path(cfg.init_from), cfg.arch))
        # Module.to(memory_format=...) is documented and works; torch's overloads of Module.to omit it.
        self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                                   weight_decay=cfg.weight_decay)
        if not 0 < cfg.warmup_epochs < cfg.epochs:
            raise ZooError(f"warm-up must be shorter than training: {cfg.warmup_epochs} of {cfg.epochs} epochs")
        steps = cfg.epochs * (len(data.train) // cfg.batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, cfg.lr, total_steps=steps,
                                                         pct_start=cfg.warmup_epochs / cfg.epochs,
                                                         anneal_strategy=cfg.anneal)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.epoch, self.best_val, self.elapsed = 0, 0.0, 0.0

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    def save(self) -> None:
        state = {
            "config": asdict(self.cfg), "epoch": self.epoch, "best_val": self.best_val, "elapsed": self.elapsed,
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
            "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
        }
        tmp = self.last_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.last_path)

    def resume(self) -> bool:
        if not self.last_path.exists():
            return False
        state = torch.load(self.last_path, map_location=self.device, weights_only=True)
        if state["config"] != asdict(self.cfg):
            raise ZooError(f"checkpoint {self.last_path} was made with {state['config']}, not {asdict(self.cfg)}; "
                           "pass the same options, or a new --run-dir to start over")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.best_val, self.elapsed = state["epoch"], state["best_val"], state["elapsed"]
        return True

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        train: ImageSet = self.data.train
        order = torch.randperm(len(train), generator=self.gen)
        n_batches = len(train) // self.cfg.batch_size
        images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
        loss_sum = correct = seen = 0
        bar = tqdm(range(n_batches), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", unit="batch", leave=False)
        for i in bar:
            idx = order[i * self.cfg.batch_size:(i + 1) * self.cfg.batch_size]
            x = augment(images[idx], self.gen, cutout=self.cfg.cutout).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx].to(self.device)
            with autocast(self.device):
                logits = self.model(x)
                loss = self.loss_fn(logits, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen}

    def evaluate(self, split: ImageSet) -> float:
        return torch_accuracy(self.model, split, device=self.device, amp=autocast(self.device))


def train(cfg: TrainConfig, data: Dataset, run_dir: Path, weights_out: Path, pre: Preprocess) -> TrainResult:
    """Train `cfg.arch` behind the card's preprocessing `pre`; resumes from `run_dir` when it holds a checkpoint."""
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, data, run_dir, pre)
    if trainer.resume():
        print(f"resumed {trainer.last_path} after epoch {trainer.epoch}")
    log = run_dir / "train_log.jsonl"
    best = run_dir / "best.pt"
    while trainer.epoch < cfg.epochs:
        start = time.perf_counter()
        stats = trainer.train_epoch()
        val = trainer.evaluate(data.val)
        trainer.epoch += 1
        trainer.elapsed += time.perf_counter() - start
        row = {"epoch": trainer.epoch, **stats, "val_acc": val, "lr": trainer.sched.get_last_lr()[0],
               "elapsed_s": round(trainer.elapsed, 1)}
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row))
        if val >= trainer.best_val:
            trainer.best_val = val
            torch.save(trainer.model.state_dict(), best)
        trainer.save()
    trainer.model.load_state_dict(torch.load(best, map_location=trainer.device, weights_only=True))
    test = trainer.evaluate(data.test)
    meta = {
        "arch": cfg.arch, "num_classes": len(data.classes), "classes": data.classes,
        "val_accuracy": trainer.best_val, "test_accuracy": test, "train_seconds": round(trainer.elapsed),
        "epochs": cfg.epochs, "config": asdict(cfg), "dataset_checksum": data.checksum,
        "hardware": hardware_summary(trainer.device), "torch": str(torch.__version__),
    }
    save_weights(trainer.model.cpu(), weights_out, meta)
    # The log and the result travel with the weights, so a shipped teacher documents itself.
    write_provenance(weights_out, meta)
    shutil.copyfile(log, weights_out.with_suffix(".train_log.jsonl"))
    return TrainResult(trainer.best_val, test, trainer.elapsed, weights_out)


def compact_checkpoint(run_dir: Path, out: Path) -> Path:
    """The run's last checkpoint with its weights and momentum in FP16: half the size, small enough to commit, so
    that a run can go on on another machine (`invoke train --resume-from`). Resuming casts them back to FP32; the
    rounding (about 1e-3 relative) is far below one SGD step's noise."""
    source = run_dir / "last.pt"
    if not source.exists():
        raise ZooError(f"{run_dir} holds no checkpoint (last.pt): nothing to compact")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state["model"] = {k: _half(v) for k, v in state["model"].items()}
    state["opt"]["state"] = {i: {k: _half(v) for k, v in s.items()} for i, s in state["opt"]["state"].items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    return out


def seed_run(run_dir: Path, checkpoint: Path) -> bool:
    """Start `run_dir` from a (compact) checkpoint, unless it already has one of its own; True when it seeded."""
    if (run_dir / "last.pt").exists():
        return False
    if not checkpoint.exists():
        raise ZooError(f"checkpoint {checkpoint} not found")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, run_dir / "last.pt")
    return True


def _half(value: torch.Tensor) -> torch.Tensor:
    return value.half() if value.is_floating_point() else value


def hardware_summary(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} x{torch.get_num_threads()} threads"
