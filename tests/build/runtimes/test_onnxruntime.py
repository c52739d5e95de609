"""The ONNX Runtime runtime: the precision it reports comes from the kernels that ran, not from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from build.repository.model_config import build_config, model_io, to_pbtxt
from build.runtimes.onnxruntime import OnnxRuntime, precision_of


def _conv_model(path: Path, qdq: bool) -> Path:
    """uint8 images -> float -> 3x3 conv to 8 channels -> ReLU -> mean: logits; with `qdq`, explicit Q/DQ on the
    conv's input, weights (int8, per tensor) and output, as the zoo's INT8 variants have them."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT)]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
    conv_in, weight = "x", "w"
    if qdq:
        inits += [numpy_helper.from_array(np.array(1.0, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.uint8), "z"),
                  numpy_helper.from_array(rng.integers(-64, 64, (8, 3, 3, 3)).astype(np.int8), "wq"),
                  numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
                  numpy_helper.from_array(np.array(0, np.int8), "wz")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                  helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"])]
        conv_in, weight = "xd", "wd"
    else:
        inits.append(numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w"))
    nodes.append(helper.make_node("Conv", [conv_in, weight], ["c"], pads=[1, 1, 1, 1]))
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
                  helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"])]
    nodes += [helper.make_node("Relu", ["cd" if qdq else "c"], ["r"]),
              helper.make_node("ReduceMean", ["r", "axes"], ["logits"], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 8])], inits)
    return _published(path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10))


def _published(path: Path, model: onnx.ModelProto, graph_level: int | None = None) -> Path:
    """A model folder as the build writes it (config.pbtxt from the runtime's fields); its version folder."""
    version = path / "1"
    version.mkdir(parents=True)
    onnx.save(model, version / "model.onnx")
    config = build_config("m", OnnxRuntime().triton_fields(version, threads=1), model_io((3, 8, 8)), 8)
    if graph_level is not None:
        config.optimization.graph.level = graph_level
    (path / "config.pbtxt").write_text(to_pbtxt(config))
    return version


def test_a_float_model_reports_fp32_kernels(tmp_path: Path) -> None:
    run = OnnxRuntime().runner(_conv_model(tmp_path / "f", qdq=False), 1)
    info = OnnxRuntime().describe(run)
    assert info["precision_ran"] == "fp32" and info["conv_kernels"], info
    assert not {"QLinearConv", "ConvInteger"} & info["conv_kernels"].keys()
    assert run(np.zeros((2, 3, 8, 8), np.uint8)).shape == (2, 8)


def test_a_qdq_model_runs_integer_convolutions(tmp_path: Path) -> None:
    info = OnnxRuntime().describe(OnnxRuntime().runner(_conv_model(tmp_path / "q", qdq=True), 1))
    assert info["conv_kernels"] == {"QLinearConv": 1} and info["precision_ran"] == "int8", info


def test_precision_follows_most_convolutions() -> None:
    assert precision_of({"QLinearConv": 19, "FusedConv": 1}) == "int8"
    assert precision_of({"QLinearConv": 2, "Conv": 5}) == "fp32"
    assert precision_of({}) == "fp32"


def test_the_builds_session_is_the_one_config_pbtxt_describes(tmp_path: Path) -> None:
    """The build times the session Triton's backend would make: threads and graph level come from config.pbtxt."""
    version = _conv_model(tmp_path / "f", qdq=False)
    run = OnnxRuntime().runner(version, threads=2)  # the config says 1 thread: the config wins
    options = run.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    unoptimized = _published(tmp_path / "none", onnx.load(str(version / "model.onnx")), graph_level=2)
    level = OnnxRuntime().runner(unoptimized, 1).session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
