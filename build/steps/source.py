"""Start a variant from another variant built earlier in the same run."""

from __future__ import annotations

from dataclasses import dataclass

from build.pipeline import BuildContext, Step, StepResult, VariantState


@dataclass(frozen=True)
class FromVariant(Step):
    parent: str

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"from:{self.parent}"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        source = state.source
        assert source is not None and source.name == self.parent, f"{state.name} starts from {self.parent}"
        # Verified against the FP32 PyTorch model at the root of the lineage, not the parent's approximation.
        return StepResult.ok(source.metrics, model=source.model, onnx_path=source.onnx_path,
                             reference_logits=source.reference_logits)
