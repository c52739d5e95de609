"""Start a variant from another variant built earlier in the same run."""

from __future__ import annotations

from build.pipeline import BuildContext, Step, VariantState


class FromVariant(Step):
    def __init__(self, parent: str) -> None:
        self.parent = parent
        self.name = f"from:{parent}"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        source = ctx.done[self.parent]
        state.model, state.onnx_path = source.model, source.onnx_path
        # Verified against the FP32 PyTorch model at the root of the lineage, not the parent's approximation.
        state.reference_logits = source.reference_logits
        state.metrics = {**source.metrics}
