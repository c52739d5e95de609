"""Start a variant from the card's source network: a copy of the torch model, or the ONNX source's file."""

from __future__ import annotations

import copy
import shutil

from build.onnx_source import macs_and_params
from build.pipeline import BuildContext, Step, StepResult, VariantState


class FromTeacher(Step):
    name = "from_teacher"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        module = ctx.teacher.module
        if module is not None:  # a torch teacher
            return StepResult.ok(model=copy.deepcopy(module).eval())
        assert ctx.teacher.onnx_path is not None  # an ONNX source: its file
        path = state.workdir / "model.onnx"
        shutil.copyfile(ctx.teacher.onnx_path, path)
        macs, params = macs_and_params(path)
        # Verified against the user's own file, fed normalised floats: the prepended preprocessing is checked too.
        return StepResult.ok({"macs": macs, "params": params}, onnx_path=path,
                             reference_logits=ctx.teacher.reference(ctx.options.threads)(ctx.verify_set))
