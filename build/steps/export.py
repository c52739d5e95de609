"""Export the variant's torch model to ONNX, and keep its logits as the verification reference."""

from __future__ import annotations

from build.complexity import macs_and_params
from build.evaluate import torch_logits
from build.export import export_onnx
from build.pipeline import BuildContext, Step, StepResult, VariantState


class ExportOnnx(Step):
    name = "export_onnx"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        if state.model is None:
            assert state.onnx_path is not None, "export needs a torch model or an ONNX source"
            return StepResult.skipped("an ONNX source: the file came with the variant")
        macs, params = macs_and_params(state.model)
        path = state.workdir / "model.onnx"
        exported = export_onnx(state.model, path)
        # FP32 torch is the reference every runtime of this variant must reproduce.
        return StepResult.ok({"macs": macs, "params": params, "graph": {"exported": exported}}, onnx_path=path,
                             reference_logits=torch_logits(state.model, ctx.verify_set))
