"""An ONNX classifier brought by a user: checked, then given the zoo's contract (uint8 pixels in, `logits` out).

The zoo prepends the card's preprocessing to the graph (Cast to float, Sub mean, Div std), so clients of its
published models send raw pixels, as they do for every other model in the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from build.card import ModelCard
from build.export import INPUT_NAME, MAX_IR_VERSION, OUTPUT_NAME, check_onnx

MAX_OPSET_FOR_IR10 = 21  # IR version 10 covers opsets up to 21


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]


def inspect(card: ModelCard, num_classes: int | None) -> onnx.ModelProto:
    """The card's ONNX model, after checking its interface against the card and the data (None: not yet known)."""
    path = Path(card.spec)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several types for a file that is not ONNX
        raise card.error("source", f"cannot read ONNX file {path} ({exc})", "export the model to ONNX again") from exc
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise card.error("source", f"{path.name} has {len(inputs)} inputs", "the zoo serves one image input")
    dims, out = _dims(inputs[0]), _dims(model.graph.output[0])
    if len(dims) != 4:
        raise card.error("input", f"{path.name}'s input {inputs[0].name} has rank {len(dims)} ({dims})",
                         "export a model that takes NCHW images")
    if inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise card.error("source", f"{path.name}'s input is not float32", "export a model that takes float32 NCHW")
    fixed = [d for d in dims[1:] if isinstance(d, int) and d > 0]
    if len(fixed) == 3 and tuple(dims[1:]) != card.input:
        raise card.error("input", f"{list(card.input)} but {path.name} takes {dims[1:]}", f"set input = {dims[1:]}")
    if len(out) != 2:
        raise card.error("source", f"{path.name}'s output has shape {out}, not (batch, classes)",
                         "export a model that returns logits")
    if num_classes is not None and isinstance(out[1], int) and out[1] > 0 and out[1] != num_classes:
        raise card.error("data", f"{path.name} returns {out[1]} classes, the data has {num_classes}",
                         "give the dataset the model was trained on")
    return model


def with_preprocessing(card: ModelCard, model: onnx.ModelProto, out: Path) -> Path:
    """Write `model` behind uint8 -> float -> (x - mean) / std, with the zoo's input and output names."""
    graph = model.graph
    original_in = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}][0]
    original_out = graph.output[0]
    pre = card.preprocess
    shape = [len(pre.mean), 1, 1]
    graph.initializer.extend([numpy_helper.from_array(np.array(pre.mean, np.float32).reshape(shape), "zoo_mean"),
                              numpy_helper.from_array(np.array(pre.std, np.float32).reshape(shape), "zoo_std")])
    # Named nodes: the FP16 converter tells nodes apart by name
    nodes = [helper.make_node("Cast", [INPUT_NAME], ["zoo_pixels"], name="zoo_cast", to=TensorProto.FLOAT),
             helper.make_node("Sub", ["zoo_pixels", "zoo_mean"], ["zoo_centred"], name="zoo_sub"),
             helper.make_node("Div", ["zoo_centred", "zoo_std"], [original_in.name], name="zoo_div")]
    graph.node.insert(0, nodes[2])
    graph.node.insert(0, nodes[1])
    graph.node.insert(0, nodes[0])
    for node in graph.node:  # the output tensor takes the zoo's name (an Identity would trip FP16 conversion)
        node.output[:] = [OUTPUT_NAME if o == original_out.name else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == original_out.name else i for i in node.input]
    graph.input.remove(original_in)
    graph.input.insert(0, helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", *card.input]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", None]))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if model.ir_version > MAX_IR_VERSION and opset <= MAX_OPSET_FOR_IR10:
        model.ir_version = MAX_IR_VERSION  # Triton 24.10's ONNX Runtime reads IR <= 10; the ops are the same
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    check_onnx(out)
    return out


class OnnxLogits:
    """Logits of an ONNX file on uint8 images, fed as the file wants: raw, or normalised floats."""

    def __init__(self, path: Path, threads: int, pre_mean: tuple[float, ...] | None = None,
                 pre_std: tuple[float, ...] | None = None) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.mean = None if pre_mean is None else np.array(pre_mean, np.float32).reshape(1, -1, 1, 1)
        self.std = None if pre_std is None else np.array(pre_std, np.float32).reshape(1, -1, 1, 1)

    def __call__(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        return np.concatenate([self.session.run(None, {self.name: self._feed(images[i:i + batch_size])})[0]
                               for i in range(0, len(images), batch_size)])

    def _feed(self, images: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return images
        return (images.astype(np.float32) - self.mean) / self.std


def macs_and_params(path: Path) -> tuple[int, int]:
    """Multiply-accumulates per image of the Conv, Gemm and MatMul nodes, and the parameters, of an ONNX file:
    what Torch-Pruning counts for torch models, so an ONNX source's report has its efficiency too."""
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # one image
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: _dims(v) for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0], [])
        known = [d for d in out if isinstance(d, int)]
        if node.op_type == "Conv" and node.input[1] in weights and out and len(known) == len(out):
            kernel = weights[node.input[1]]  # (Cout, Cin / groups, kh, kw)
            macs += int(np.prod(known)) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights and out and isinstance(out[-1], int):
            inner = int(np.prod(weights[node.input[1]])) // out[-1]  # K, whether the weight is (K, N) or (N, K)
            macs += int(np.prod(known)) * inner
    return macs, sum(int(np.prod(d)) for d in weights.values())
