"""Retrain the teacher on a GPU within a time budget, then every shipped run keyed by it, for a machine without
invoke (the borrowed GPU machines have PyTorch but not this project's tasks).

It calls the functions `invoke train`, `invoke distill` and `invoke prune` call, with their arguments:
  teacher            train(TrainConfig(...))            = invoke train --epochs E --warmup-epochs E/5 ...
  widenet student    distill_student(DistillConfig())   = invoke distill
  the other students distill_student(distill_config(arch)) = invoke distill --set distill.student=... (the ladder)
  pruned             prune_shipped("pruned")            = invoke prune --variants pruned
  pruned_distilled   prune_shipped("pruned_distilled")  = invoke prune --variants pruned_distilled

The teacher's epochs are the most that fit `--budget` seconds, timed on this machine by a short pilot; the
recipe is phase 1's (docs/training.md). The runs that follow the teacher go in parallel processes, and each
result is packed into --out as soon as it exists, so a run cut short still returns what finished.

    python -m build.gpu_retrain --card models/resnet18_cifar10.toml --data cifar10-jpeg.tar.gz --out $OUT --budget 300

Measured on one NVIDIA H200 (docs/training.md): 2.05 s an epoch of the teacher's recipe, so 95 epochs in 195 s;
then, three followers sharing the GPU: `pruned` 16 s, the 12-epoch MobileNetV2 student 156 s, and the 60-epoch
ResNet-20 student more than 330 s (stopped at the deadline; its loop is bound by per-step launches, not the GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from build.card import ModelCard, load_card
from build.data import Dataset, ImageSet, load_dataset
from build.train import TrainConfig, Trainer, train

PART_BYTES = 15_000_000  # files come back from the device machine in pieces of at most 16 MiB
# The runs after the teacher: name -> what they ship (run one after another within a follower).
FOLLOWERS = {"student": ["widenet", "pruned_distilled"], "pruned": ["pruned"], "ladder": ["resnet20", "mobilenetv2"]}


def recipe(epochs: int, smoke: bool) -> TrainConfig:
    """The shipped teacher's recipe (TrainConfig's defaults) for `epochs`, its LR peak at 20% of them."""
    return replace(TrainConfig(), epochs=epochs, warmup_epochs=max(1, round(epochs / 5)),
                   batch_size=100 if smoke else TrainConfig.batch_size)


def plan_epochs(data: Dataset, card: ModelCard, budget: float, smoke: bool, scratch: Path) -> tuple[int, float]:
    """Epochs of the recipe that fit `budget` seconds: an epoch (training + validation) timed on a slice."""
    n = min(len(data.train), 5000)
    part = replace(data, train=ImageSet(data.train.images[:n], data.train.labels[:n]))
    pilot = Trainer(recipe(2, smoke), part, scratch, card.preprocess)
    pilot.train_epoch()  # warm-up: kernel selection, allocator
    start = time.perf_counter()
    pilot.train_epoch()
    pilot.evaluate(data.val)
    # the validation pass is timed whole; the training pass scales with the images
    per_epoch = (time.perf_counter() - start) * len(data.train) / n
    return (2 if smoke else epochs_within(budget, per_epoch)), per_epoch


def epochs_within(budget: float, per_epoch: float) -> int:
    """The most epochs that fit `budget` seconds, a multiple of 5 (so the peak falls on a whole epoch), 5 to 200."""
    return max(5, min(200, math.floor(budget / per_epoch / 5) * 5))


def pack(out: Path, name: str, files: list[Path]) -> None:
    """Tar `files` into out/name.tar, in pieces small enough to come back."""
    tmp = out / f".{name}.tar"
    with tarfile.open(tmp, "w") as tar:
        for f in files:
            tar.add(f, arcname=f.name)
    blob = tmp.read_bytes()
    tmp.unlink()
    pieces = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
    for i, piece in enumerate(pieces):
        (out / (f"{name}.tar" if len(pieces) == 1 else f"{name}.tar.{i:02d}")).write_bytes(piece)
    print(f"packed {[f.name for f in files]} -> {out}/{name}.tar ({len(blob) / 1e6:.1f} MB)", flush=True)


def run_teacher(args: argparse.Namespace, card: ModelCard, data: Dataset) -> None:
    if args.epochs:
        epochs, pilot = args.epochs, {}
    else:
        epochs, per_epoch = plan_epochs(data, card, args.budget, args.smoke, Path(args.work) / "pilot")
        pilot = {"pilot_s_per_epoch": round(per_epoch, 2)}
    cfg = recipe(epochs, args.smoke)
    print(json.dumps({**pilot, "epochs": epochs, "config": asdict(cfg)}), flush=True)
    assert card.weights is not None
    result = train(cfg, data, Path(args.work) / "teacher", card.weights, card.preprocess)
    print(json.dumps({"teacher_val": result.val_accuracy, "teacher_test": result.test_accuracy,
                      "seconds": round(result.seconds)}), flush=True)
    pack(Path(args.out), "teacher", [card.weights, card.weights.with_suffix(".json"),
                                      card.weights.with_suffix(".train_log.jsonl")])


def run_follower(args: argparse.Namespace, card: ModelCard, data: Dataset) -> None:
    from build.models import ARCHITECTURES
    from build.profiles import options_for
    from build.steps.distill import distill_student
    from build.steps.prune import prune_shipped
    from build.variants import distill_config

    smoke = ["distill.epochs=0.02", "prune.finetune_steps=2", "prune.final_steps=2"]  # pruned_distilled's student too
    options = options_for("default", smoke if args.smoke else [])
    shipped: list[Path] = []
    for name in FOLLOWERS[args.follower]:
        if name in ARCHITECTURES:
            cfg = distill_config(name)
            record = distill_student(card, data, replace(cfg, epochs=0.02) if args.smoke else cfg)
        else:
            record = prune_shipped(name, card, data, options)
        print(json.dumps({"shipped": name, "val": record["val_accuracy"], "test": record["test_accuracy"],
                          "seconds": record["train_seconds"], "weights": record["weights"]}), flush=True)
        shipped += [Path(record["weights"]), Path(record["weights"]).with_suffix(".json")]
        pack(Path(args.out), args.follower, shipped)


def run_followers(args: argparse.Namespace, card: ModelCard, data: Dataset) -> None:
    """The runs keyed by the teacher, in parallel processes; those unfinished at --deadline are stopped."""
    from build.data.dataset import sha256_file
    from build.models import load_weights
    from build.shipped import shipped_teacher
    from build.teacher_logits import teacher_logits

    teacher_path = shipped_teacher(card)
    teacher, _ = load_weights(teacher_path, card.preprocess)
    teacher_logits(teacher, data.train.images, sha256_file(teacher_path), data.checksum)  # cached once for all
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // len(FOLLOWERS))
    procs = {}
    for i, name in enumerate(FOLLOWERS):
        cmd = [sys.executable, "-m", "build.gpu_retrain", *sys.argv[1:], "--follower", name]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        procs[name] = subprocess.Popen(cmd, env=env, preexec_fn=_pin(cores[i * share:(i + 1) * share] or cores))
    while procs and time.time() < args.deadline:
        for name, proc in list(procs.items()):
            if proc.poll() is not None:
                print(f"follower {name} exited {proc.returncode}", flush=True)
                del procs[name]
        time.sleep(1)
    for name, proc in procs.items():
        print(f"follower {name} stopped at the deadline", flush=True)
        proc.kill()


def _pin(cores: list[int]):
    return lambda: os.sched_setaffinity(0, cores)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True, help="the teacher's model card (a builtin network with weights)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/gpu_retrain")
    p.add_argument("--budget", type=float, default=300.0, help="seconds of teacher training")
    p.add_argument("--epochs", type=int, default=0, help="teacher epochs (default: as many as fit --budget)")
    p.add_argument("--deadline", type=float, default=math.inf,
                   help="epoch seconds at which unfinished followers are stopped (default: none)")
    p.add_argument("--follower", choices=sorted(FOLLOWERS))
    p.add_argument("--smoke", action="store_true", help="tiny runs, to check the script on a CPU")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    card = load_card(Path(args.card), args.data)
    if card.weights is None:
        raise SystemExit(f"error: {args.card} names no weights file: this script retrains a card's builtin network")
    # the new teacher and its runs go to the work folder, never over the card's shipped files
    weights = Path(args.work) / "weights" / card.weights.name
    weights.parent.mkdir(parents=True, exist_ok=True)
    card = replace(card, weights=weights)
    data = load_dataset(card.data, card.input)
    if args.smoke:
        data = replace(data, train=ImageSet(data.train.images[:1000], data.train.labels[:1000]),
                       val=ImageSet(data.val.images[:500], data.val.labels[:500]),
                       test=ImageSet(data.test.images[:500], data.test.labels[:500]))
    if args.follower:
        run_follower(args, card, data)
        return
    run_teacher(args, card, data)
    run_followers(args, card, data)


if __name__ == "__main__":
    main()
