"""Turn the variant's ONNX model into one Triton model per runtime: verify, measure, stage, record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from build.data.dataset import sha256_file
from build.export import verify
from build.measure import measure_speed, runner_accuracy, size_mb, speed_dict
from build.pipeline import BuildContext, Step, VariantState
from build.repository.model_config import LABELS_FILE, build_config, to_pbtxt
from build.repository.publish import read_manifest
from build.runtimes import Runtime


def model_name(arch: str, variant: str, runtime: str) -> str:
    """The ONNX Runtime model is the plain name; other runtimes add theirs as a suffix."""
    base = f"{arch}_{variant}"
    return base if runtime == "onnxruntime" else f"{base}_{runtime}"


class PublishRuntime(Step):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.name = f"publish:{runtime.name}"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        assert state.onnx_path is not None and state.reference_logits is not None
        name = model_name(ctx.options.arch, state.name, self.runtime.name)
        version = read_manifest(ctx.publication.repo)["models"].get(name, {}).get("version", 0) + 1
        folder = ctx.publication.stage(name)
        files = self.runtime.prepare(state.onnx_path, _mkdir(folder / str(version)))
        run = self.runtime.runner(folder / str(version), ctx.options.threads)
        agreement = verify(name, state.reference_logits, run(ctx.verify_set), state.tolerance)
        test = ctx.data.test if ctx.options.eval_images is None else ctx.data.test.head(ctx.options.eval_images)
        (folder / LABELS_FILE).write_text("\n".join(ctx.data.classes) + "\n")
        config = build_config(name, self.runtime.triton_fields(ctx.options.threads), ctx.io)
        (folder / "config.pbtxt").write_text(to_pbtxt(config))
        entry = {
            "model": name, "variant": state.name, "runtime": self.runtime.name, "arch": ctx.options.arch,
            "version": version, "parent": state.parent, "recipe": [*state.recipe, self.name],
            "accuracy": {"top1": runner_accuracy(run, test), "split": "test", "images": len(test)},
            "verification": agreement.as_dict(),
            "size_mb": round(size_mb(files), 3),
            "files": {f.name: sha256_file(f) for f in files},
            "io": {"input": ctx.io.input_name, "input_dtype": "UINT8", "input_dims": list(ctx.io.input_dims),
                   "output": ctx.io.output_name, "labels": LABELS_FILE},
            "max_batch_size": config.max_batch_size,
            "metrics": state.metrics,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **ctx.provenance,
        }
        if ctx.options.measure_speed:
            entry["speed"] = speed_dict(measure_speed(run, ctx.data.test.images))
        ctx.publication.record(name, entry)
        state.published.append(name)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
