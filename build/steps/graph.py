"""Offline graph optimization with ONNX Runtime, and the op counts before and after.

The published graph is optimized at ONNX Runtime's *basic* level only (constant folding, redundant
node removal, Conv+BatchNorm/Add/Mul fusions): those rewrites use standard ONNX ops, so OpenVINO,
TensorRT and the quantizer still read the file. The *all* level adds hardware-specific ops
(FusedConv, NCHWc layouts) that ONNX Runtime applies by itself at load time; its counts are
recorded for information, not published.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort

from build.export import check_onnx, op_counts
from build.pipeline import BuildContext, Step, StepResult, VariantState

LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def optimize(src: Path, dst: Path, level: str) -> onnx.ModelProto:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    opts.optimized_model_filepath = str(dst)
    opts.log_severity_level = 3  # the warning that level "all" output is hardware-specific is the point here
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    model = onnx.load(str(dst))
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]  # ORT declares every domain it knows
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(dst))
    return model


class OptimizeGraph(Step):
    name = "optimize_graph"

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        assert state.onnx_path is not None
        before = op_counts(onnx.load(str(state.onnx_path)))
        out = state.workdir / "optimized.onnx"
        after = op_counts(optimize(state.onnx_path, out, "basic"))
        check_onnx(out)
        at_load = op_counts(optimize(out, state.workdir / "ort_all.onnx", "all"))
        graph = state.metrics.get("graph", {})
        return StepResult.ok({"graph": {
            **graph, "exporter_optimized": before, "published": after, "onnxruntime_at_load": at_load,
            "nodes": {"exported": sum(graph.get("exported", {}).values()),
                      "exporter_optimized": sum(before.values()), "published": sum(after.values()),
                      "onnxruntime_at_load": sum(at_load.values())},
        }}, onnx_path=out)
