"""Export the variant's torch model to ONNX, and keep its logits as the verification reference."""

from __future__ import annotations

from build.complexity import macs_and_params
from build.evaluate import torch_logits
from build.export import export_onnx
from build.pipeline import BuildContext, Step, VariantState


class ExportOnnx(Step):
    name = "export_onnx"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        if state.model is None:  # an ONNX source: the file came with the variant, there is nothing to export
            assert state.onnx_path is not None, "export needs a torch model or an ONNX source"
            return
        state.metrics["macs"], state.metrics["params"] = macs_and_params(state.model)
        state.onnx_path = state.workdir / "model.onnx"
        state.metrics["graph"] = {"exported": export_onnx(state.model, state.onnx_path)}
        # FP32 torch is the reference every runtime of this variant must reproduce.
        state.reference_logits = torch_logits(state.model, ctx.verify_set)
