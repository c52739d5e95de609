"""Turn the variant's ONNX model into one Triton model per runtime: verify, evaluate, and return what it made.

The step builds the model's folder in the variant's own work folder and returns it with the model's typed manifest
entry; it writes nothing shared. The build measures the entries, then hands the models that succeeded to the
publication once, which numbers their versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from build.data.dataset import sha256_file
from build.errors import ModelRejected, VariantRejected
from build.measure import accuracy_record, compressed_mb, onnx_accuracy, predict, size_mb
from build.pipeline import BuildContext, Published, Status, Step, StepResult, VariantState
from build.repository.model_config import LABELS_FILE, build_config, to_pbtxt
from build.runtimes import REFERENCE_RUNTIME, Runtime
from build.variants.base import Variant
from build.verification import verify
from serving.manifest import ManifestError, ModelEntry
from serving.publication import DRAFT_VERSION


def model_name(family: str, variant: str, runtime: str) -> str:
    """<card name>_<variant>, and other runtimes than the reference add theirs as a suffix."""
    base = f"{family}_{variant}"
    return base if runtime == REFERENCE_RUNTIME else f"{base}_{runtime}"


@dataclass(frozen=True)
class PublishRuntime(Step):
    runtime: Runtime
    variant: Variant

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"publish:{self.runtime.name}"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        assert state.onnx_path is not None and state.reference_logits is not None
        name = model_name(ctx.name, state.name, self.runtime.name)
        # A runtime may decline a variant by what it declares (TensorRT takes only the precision variants), or its file
        why = self.runtime.skip_variant(self.variant) or self.runtime.skip_reason(state.onnx_path)
        if why:
            return self._result(Status.SKIPPED, name, why)
        try:
            return self._publish(name, state, ctx)
        except VariantRejected as exc:
            if self.runtime.name == REFERENCE_RUNTIME:  # the variant's own file failed: the variant fails
                return StepResult.failed(str(exc))
            return self._result(Status.FAIL, name, str(exc))
        except ModelRejected as exc:  # only this runtime's model; the variant and its other runtimes go on
            return self._result(Status.FAIL, name, str(exc))

    def _result(self, status: Status, name: str, why: str = "", entry: ModelEntry | None = None,
                folder: Path | None = None, **produced: object) -> StepResult:
        return StepResult(status, why, produced=produced,
                          published=Published(name, self.runtime.name, entry, folder))

    def _publish(self, name: str, state: VariantState, ctx: BuildContext) -> StepResult:
        assert state.onnx_path is not None and state.reference_logits is not None  # as run() checked
        # The model's own folder, in the variant's work folder: the publication numbers its version when it takes it
        folder = _mkdir(state.workdir / "models" / name)
        version_dir = _mkdir(folder / str(DRAFT_VERSION))
        files = self.runtime.prepare(state.onnx_path, version_dir)
        config = build_config(name, self.runtime.triton_fields(version_dir, ctx.options.threads), ctx.io,
                              len(ctx.data.classes))
        (folder / "config.pbtxt").write_text(to_pbtxt(config))
        (folder / LABELS_FILE).write_text("\n".join(ctx.data.classes) + "\n")
        run = self.runtime.runner(version_dir, ctx.options.threads)
        # one pass over the test images: the verification images are their first ones
        verified, tested = len(ctx.verify_set), len(ctx.test_set)
        logits = predict(run, ctx.data.test.images[:max(verified, tested)])
        agreement = verify(name, state.reference_logits, logits[:verified], self.runtime.tolerance(state.tolerance))
        acc = accuracy_record(logits[:tested], ctx.test_set.labels, ctx.options.served_check_images)
        self._check_floor(name, acc.top1, state, ctx)
        reference_top1 = acc.top1 if self.runtime.name == REFERENCE_RUNTIME else state.reference_top1
        reference_top1 = self._check_budget(name, acc.top1, reference_top1, state, ctx)
        note = self.variant.hardware_note(ctx.hardware)
        entry = ModelEntry(
            model=name, family=ctx.name, variant=state.name, runtime=self.runtime.name, version=DRAFT_VERSION,
            io=ctx.io, accuracy=acc, max_batch_size=config.max_batch_size, precision=self.variant.precision,
            baseline=model_name(ctx.name, self.variant.baseline, REFERENCE_RUNTIME), parent=state.parent,
            recipe=(*state.recipe, self.name), description=self.variant.description,
            size_mb=round(size_mb(files), 3), compressed_mb=round(compressed_mb(files), 3),
            flags={"hardware": note} if note else {}, metrics=dict(state.metrics),
            runtime_info=self.runtime.describe(run),
            details={"verification": agreement.as_dict(), "files": {f.name: sha256_file(f) for f in files},
                     "profile": ctx.options.profile, "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     **ctx.provenance})
        _check_schema(entry)
        return self._result(Status.OK, name, entry=entry, folder=folder, reference_top1=reference_top1)

    def _check_floor(self, name: str, top1: float, state: VariantState, ctx: BuildContext) -> None:
        """A derived variant far below its parent is broken; the source's own fp32, the user's model, never is."""
        limit = ctx.options.max_drop_points
        if limit is None or self.variant.is_baseline:
            return
        parent = ctx.parent_top1(state)
        if parent is None:
            return
        lost = points_lost(parent, top1)
        if lost > limit:
            raise VariantRejected(f"{name}: test top-1 {top1:.4f} is {lost:.1f} points below its "
                                  f"parent's {parent:.4f}; a variant may lose at most {limit:g} (--max-drop)")

    def _check_budget(self, name: str, top1: float, reference_top1: float | None, state: VariantState,
                      ctx: BuildContext) -> float | None:
        """A lossy runtime (BF16) may lose at most its budget against the variant's exact FP32 file; returns that
        file's top-1 when it was measured for the check (the reference runtime was not asked for)."""
        budget = self.runtime.max_drop_points
        if budget is None:
            return reference_top1
        if reference_top1 is None:  # the reference runtime was not asked for: measure its file here
            assert state.onnx_path is not None  # as run() checked
            reference_top1 = onnx_accuracy(state.onnx_path, ctx.test_set, ctx.options.threads)
        drop = points_lost(reference_top1, top1)
        if drop > budget:
            raise ModelRejected(f"{name}: loses {drop:.2f} points of test top-1 against its FP32 source "
                                f"(budget {budget})")
        return reference_top1


def points_lost(reference_top1: float, top1: float) -> float:
    """Top-1 lost, in points, to a millionth of one: a loss of exactly the budget is within it (one image of 500
    is 0.2 points, while 0.358 - 0.356 is 0.0020000000000000018 in floats)."""
    return round((reference_top1 - top1) * 100, 6)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _check_schema(entry: ModelEntry) -> None:
    """The entry as the manifest will read it: a field the schema refuses fails here, at the step that made it, and
    not when the whole build commits."""
    try:
        ModelEntry.from_dict(entry.to_dict(), entry.model)
    except ManifestError as exc:
        raise ModelRejected(f"{entry.model}: its manifest entry does not follow the schema: {exc}") from exc
