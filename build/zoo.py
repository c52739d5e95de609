"""Build the zoo: run each requested variant's recipe, then publish every runtime atomically."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from build.data import Dataset
from build.data.dataset import sha256_file
from build.errors import ZooError
from build.hardware import detect
from build.models import load_weights
from build.pipeline import BuildContext, BuildOptions, Pipeline, Step, VariantState
from build.repository.publish import Publication
from build.runtimes import RUNTIMES, Runtime
from build.steps.publish import PublishRuntime
from build.variants import VARIANTS


def build_zoo(data: Dataset, teacher_path: Path, repo: Path, variants: list[str], runtimes: list[str],
              options: BuildOptions = BuildOptions(), log=print) -> list[VariantState]:
    """Build `variants` for `runtimes` into `repo`. Nothing is published unless every step succeeds."""
    unknown = [v for v in variants if v not in VARIANTS] + [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ZooError(f"unknown variant or runtime {unknown}; "
                       f"variants: {sorted(VARIANTS)}, runtimes: {sorted(RUNTIMES)}")
    teacher, meta = load_weights(teacher_path)
    if meta.get("classes") and meta["classes"] != data.classes:
        raise ZooError(f"teacher {teacher_path} was trained on classes {meta['classes']}, "
                       f"the dataset has {data.classes}")
    usable = _usable_runtimes(runtimes, log)
    provenance = {
        "hardware": detect().summary(),
        "dataset": {"source": data.source, "checksum": data.checksum},
        "teacher": {"file": Path(teacher_path).name, "sha256": sha256_file(Path(teacher_path)),
                    "test_accuracy": meta.get("test_accuracy")},
        "code_version": code_version(),
    }
    with tempfile.TemporaryDirectory(prefix="tritonzoo-build-") as work, Publication(repo) as publication:
        ctx = BuildContext(data, teacher, options, usable, publication, Path(work), provenance)
        plan = [(name, _steps(name, publish, usable)) for name, publish in build_order(variants)]
        for _, steps in plan:  # every setting is checked before the first expensive step
            for step in steps:
                step.check(ctx)
        for name, steps in plan:
            ctx.done[name] = _build_variant(name, steps, ctx, log)
    return [ctx.done[name] for name in variants]


def build_order(requested: list[str]) -> list[tuple[str, bool]]:
    """Each requested variant after its parents; a parent built only as a source is not published."""
    order: dict[str, bool] = {}

    def visit(name: str, publish: bool) -> None:
        parent = VARIANTS[name].parent
        if parent in VARIANTS and parent not in order:
            visit(parent, False)
        order[name] = order.get(name, False) or publish

    for name in requested:
        visit(name, True)
    return list(order.items())


def _steps(name: str, publish: bool, runtimes: list[Runtime]) -> list[Step]:
    return VARIANTS[name].steps() + ([PublishRuntime(r) for r in runtimes] if publish else [])


def _build_variant(name: str, steps: list[Step], ctx: BuildContext, log) -> VariantState:
    variant = VARIANTS[name]
    workdir = ctx.workdir / name
    workdir.mkdir()
    state = VariantState(name=name, parent=variant.parent, tolerance=variant.tolerance, workdir=workdir)
    return Pipeline(steps).run(state, ctx, log)


def _usable_runtimes(names: list[str], log) -> list[Runtime]:
    usable = []
    for name in names:
        reason = RUNTIMES[name].unavailable_reason()
        if reason:
            log(f"skipping runtime {name}: {reason}")
        else:
            usable.append(RUNTIMES[name])
    if not usable:
        raise ZooError(f"none of the runtimes {names} can run on this machine")
    return usable


def code_version() -> str:
    """The git commit the build ran from, marked -dirty when the tree had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
