"""FP16 weights and activations with FP32 inputs and outputs, for GPU runtimes."""

from __future__ import annotations

import warnings

import onnx
from onnxconverter_common import float16

from build.export import check_onnx
from build.pipeline import BuildContext, Step, StepResult, VariantState


class ConvertFp16(Step):
    name = "convert_fp16"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        assert state.onnx_path is not None
        model = onnx.load(str(state.onnx_path))
        # The converter mistypes a Cast from the uint8 input; keep that Cast in FP32 and cast after it.
        inputs = {i.name for i in model.graph.input}
        casts = [n.name for n in model.graph.node if n.op_type == "Cast" and set(n.input) & inputs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it warns for every tiny constant it rounds
            model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=casts)
        out = state.workdir / "model.onnx"
        onnx.save(model, str(out))
        check_onnx(out)
        return StepResult.ok(onnx_path=out)
