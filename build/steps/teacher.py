"""Start a variant from the card's source network: a copy of the torch model, or the ONNX source's file."""

from __future__ import annotations

import copy
import shutil

from build.onnx_source import macs_and_params
from build.pipeline import BuildContext, Step, VariantState


class FromTeacher(Step):
    name = "from_teacher"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        if ctx.teacher.is_torch:
            state.model = copy.deepcopy(ctx.teacher.module).eval()
            return
        state.onnx_path = state.workdir / "model.onnx"
        shutil.copyfile(ctx.teacher.onnx_path, state.onnx_path)
        state.metrics["macs"], state.metrics["params"] = macs_and_params(state.onnx_path)
        # Verified against the user's own file, fed normalised floats: the prepended preprocessing is checked too.
        state.reference_logits = ctx.teacher.reference(ctx.options.threads)(ctx.verify_set)
