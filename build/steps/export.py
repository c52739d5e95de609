"""Export the variant's torch model to ONNX, and keep its logits as the verification reference."""

from __future__ import annotations

from build.evaluate import torch_logits
from build.export import export_onnx
from build.pipeline import BuildContext, Step, VariantState


class ExportOnnx(Step):
    name = "export_onnx"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        assert state.model is not None, "export needs a torch model from an earlier step"
        state.metrics["params"] = sum(p.numel() for p in state.model.parameters())
        state.onnx_path = export_onnx(state.model, state.workdir / "model.onnx", ctx.io.input_dims)
        # FP32 torch is the reference every runtime of this variant must reproduce.
        state.reference_logits = torch_logits(state.model, ctx.verify_set)
