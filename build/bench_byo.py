"""A user's first build, timed: an ImageNet-shaped ResNet-18 brought as a torch source and as its ONNX export.

Each card is built by the very command a user runs (`invoke zoo`, default settings, the default variant set plus
what `variants` adds), in a process of its own, with an empty cache and an empty repository: decoding and resizing
the images, training what the card's variants need (nothing is shipped for a user's model; each run within the default
profile's compute budget, `DEFAULT_TRAIN_BUDGET_TMACS`), exporting, verifying,
measuring and the served check are all in its time. The result says where the time went, variant by variant, and
the speed-ups the build's report measured at that size. The network is trained for a few epochs beforehand, as a
user's model would be (not timed), so that what each variant keeps of its accuracy, and its agreement with the
original, are those of a classifier rather than of a network that answers one class.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from build.card import ModelCard, load_card, write_onnx_card
from build.data import load_dataset
from build.data.subset import subset_archive
from build.errors import ZooError
from build.export import export_float_onnx
from build.fit import FitConfig, fit
from build.models import Classifier
from build.sources import network
from serving.manifest import read_manifest
from serving.provenance import provenance

IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
CHECK_KEYS = ("max_rel_logit_diff", "confident_top1_agreement")  # the documented tolerances' two figures
STEP_LINE = re.compile(r"^\s+\[(?P<variant>[\w]+)\] (?P<step>[\w:]+) \((?P<seconds>[\d.]+)s\)")


@dataclass(frozen=True)
class ByoBenchConfig:
    size: int = 224
    train_per_class: int = 110  # ~1,000 training images over CIFAR-10's 10 classes, a small custom dataset
    test_per_class: int = 50
    variants: str = "default,fp16"  # FP16 is optional on a CPU, and part of what a user of such a model asks for
    width: int = 64  # ResNet-18's own widths: 1.8 GMACs at 224
    # The user's model is trained before it is brought (plain cross-entropy on the training split; not timed): a
    # network that classifies, so that accuracy drops and agreement with it mean something. 0: seeded initial
    # weights, a network that answers one class for every image.
    train_epochs: int = 8


@dataclass
class CardTiming:
    card: str
    source: str
    returncode: int
    seconds: float
    peak_rss_mb: float
    models: list[str]
    phases: str  # the build's own line of where the time went
    variant_seconds: dict[str, float] = field(default_factory=dict)  # summed step times, per variant
    # from the build's report: model, runtime, top-1, speed-ups; and its verification against the original
    speedups: list[dict] = field(default_factory=list)


def prepare(data: Path, out: Path, cfg: ByoBenchConfig) -> list[Path]:
    """The dataset subset, the torch card, the ONNX export and its card; returns the two cards."""
    if not (data.is_file() and tarfile.is_tarfile(data)):
        raise ZooError(f"{data} is not an ImageFolder archive: bench-byo cuts its dataset from a .tar.gz with train/ "
                       "and test/ class folders; pass --data (e.g. ../shared/data/cifar10-jpeg.tar.gz)")
    out.mkdir(parents=True, exist_ok=True)
    subset = subset_archive(data, None, out / "data.tar.gz",
                            {"train": cfg.train_per_class, "test": cfg.test_per_class})
    torch_card = out / "inet_torch.toml"
    lines = ['name = "inet"', 'source = "torch:build.models.imagenet:imagenet_resnet18"',
             f"args = {{ num_classes = {len(archive_classes(subset))}, width = {cfg.width} }}",
             f"input = [3, {cfg.size}, {cfg.size}]",
             f"mean = {IMAGENET_MEAN}", f"std = {IMAGENET_STD}", f'data = "{subset.name}"']
    torch_card.write_text("\n".join(lines) + "\n")
    if cfg.train_epochs:
        weights = train_user_model(load_card(torch_card), out / "inet_weights.pt", cfg.train_epochs)
        torch_card.write_text("\n".join([*lines, f'weights = "{weights.name}"']) + "\n")
    card = load_card(torch_card)
    onnx_file = export_float_onnx(network(card), out / "inet_onnx.onnx", card.input)  # its card: inet_onnx.toml
    return [torch_card, write_onnx_card(card, onnx_file)]


def train_user_model(card: ModelCard, out: Path, epochs: int, batch_size: int = 64) -> Path:
    """The card's network trained for `epochs` on its training split (cross-entropy, one-cycle SGD), as a user
    brings it: its state dict at `out`. Decoded into a cache of its own, so that the timed builds decode too."""
    with tempfile.TemporaryDirectory(prefix="tritonzoo-cache-") as cache:
        data = load_dataset(card.data, card.input, Path(cache))
        model = Classifier(network(card), card.preprocess)
        steps = epochs * math.ceil(len(data.train) / batch_size)
        no_teacher = np.zeros((len(data.train), len(data.classes)), np.float32)  # alpha 0: cross-entropy alone
        fit(model, data.train, no_teacher, FitConfig(steps=steps, batch_size=batch_size, alpha=0.0),
            f"train {card.name} (the user's model, {epochs} epochs)")
    torch.save(model.backbone.state_dict(), out)
    return out


def archive_classes(archive: Path) -> list[str]:
    """The class folders of an ImageFolder archive's train/ split."""
    with tarfile.open(archive) as tar:
        return sorted({Path(m.name).parts[-2] for m in tar if m.isfile() and "train" in Path(m.name).parts[:-2]})


def time_build(card: Path, out: Path, variants: str) -> CardTiming:
    """`invoke zoo` on one card, from nothing: its wall time, its peak resident memory (the largest of its process
    tree's), what it published and where its time went."""
    parsed = load_card(card)
    name = parsed.name
    repo, report, log = out / f"repo-{name}", out / f"report-{name}", out / f"zoo-{name}.log"
    command = [sys.executable, "-m", "invoke", "zoo", "--card", str(card), "--variants", variants,
               "--repo", str(repo), "--report", str(report)]
    with tempfile.TemporaryDirectory(prefix="tritonzoo-cache-") as cache, log.open("w") as sink:
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stdout=sink,
                                stderr=subprocess.STDOUT, env={**os.environ, "TRITONZOO_CACHE": cache})
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the largest RSS of its tree (Triton included)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    text, models = log.read_text(errors="replace"), read_manifest(repo).models
    checks = {name: entry.details.get("verification", {}) for name, entry in models.items()}
    return CardTiming(
        card=parsed.name, source=parsed.source, returncode=proc.returncode,
        seconds=round(seconds, 1), peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        models=sorted(models), phases=_last(text, "time:"),
        variant_seconds=variant_seconds(text), speedups=with_checks(_speedups(report), checks))


def with_checks(rows: list[dict], checks: dict[str, dict]) -> list[dict]:
    """Each report row with its model's verification against the original, as the manifest records it."""
    return [{**row, **{k: checks.get(row["model"], {}).get(k) for k in CHECK_KEYS}} for row in rows]


def variant_seconds(log: str) -> dict[str, float]:
    """Each variant's steps' seconds summed, from the build's progress lines (`  [int8] quantize_static_int8 (41s)`)."""
    totals: dict[str, float] = {}
    for line in log.splitlines():
        match = STEP_LINE.match(line)
        if match:
            totals[match["variant"]] = round(totals.get(match["variant"], 0.0) + float(match["seconds"]), 1)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _last(text: str, prefix: str) -> str:
    return next((line for line in reversed(text.splitlines()) if line.startswith(prefix)), "")


def _speedups(report: Path) -> list[dict]:
    files = sorted(report.rglob("zoo_report.json"))
    if not files:
        return []
    keys = ("model", "runtime", "precision_ran", "top1", "macs", "throughput_b64_ips", "speedup_b1", "speedup_b64",
            "gmacs_per_s")
    return [{k: m.get(k) for k in keys} for m in json.loads(files[0].read_text())["models"]]


def run_byo_bench(data: Path, out: Path, cfg: ByoBenchConfig, log=print) -> Path:
    """Prepare both cards, time each build, write `out/bench_byo.json` and `.md`; returns the Markdown's path."""
    cards = prepare(data, out, cfg)
    timings = []
    for card in cards:
        log(f"timing invoke zoo --card {card} (empty cache; its output beside it, zoo-<card name>.log)")
        timings.append(time_build(card, out, cfg.variants))
        log(f"  {timings[-1].seconds / 60:.1f} min, exit {timings[-1].returncode}")
    (out / "bench_byo.json").write_text(json.dumps(
        {"provenance": provenance("byo_bench"), "config": asdict(cfg), "cards": [asdict(t) for t in timings]},
        indent=2) + "\n")
    path = out / "bench_byo.md"
    path.write_text(render(cfg, timings))
    return path


def render(cfg: ByoBenchConfig, timings: list[CardTiming]) -> str:
    lines = [f"# A user's first build at {cfg.size}x{cfg.size}: ImageNet-shaped ResNet-18 (width {cfg.width})", "",
             f"`invoke zoo --variants {cfg.variants}` with default settings, an empty cache and an empty repository, "
             f"{cfg.train_per_class} training and {cfg.test_per_class} test images a class; the user's model "
             + (f"trained {cfg.train_epochs} epochs on them beforehand (not timed)." if cfg.train_epochs else
                "at its seeded initial weights (untrained)."), "",
             "| card | source | exit | wall | peak RSS MB | models published |", "|---|---|---|---|---|---|"]
    lines += [f"| {t.card} | `{t.source}` | {t.returncode} | {t.seconds / 60:.1f} min | {t.peak_rss_mb:.0f} | "
              f"{len(t.models)} |" for t in timings]
    for t in timings:
        lines += ["", f"## {t.card}", "", t.phases, "", "Seconds per variant (its steps, summed): " +
                  ", ".join(f"{v} {s:.0f}" for v, s in t.variant_seconds.items()), "",
                  "| model | runtime | ran as | top-1 | MMACs | b64 img/s | speed-up b1 | speed-up b64 | GMAC/s | "
                  "max logit diff / range | top-1 agreement (confident) |", "|---" * 11 + "|"]
        lines += [f"| {m['model']} | {m['runtime']} | {m['precision_ran']} | {_pct(m['top1'])} | "
                  f"{_num(m['macs'], 1e-6, '.1f')} | {_num(m['throughput_b64_ips'], 1, '.0f')} | "
                  f"{_num(m['speedup_b1'], 1, '.2f')}x | {_num(m['speedup_b64'], 1, '.2f')}x | "
                  f"{_num(m['gmacs_per_s'], 1, '.0f')} | {_num(m.get('max_rel_logit_diff'), 1, '.1e')} | "
                  f"{_pct(m.get('confident_top1_agreement'))} |" for m in t.speedups]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _num(value: float | None, scale: float, spec: str) -> str:
    return "–" if value is None else format(value * scale, spec)
