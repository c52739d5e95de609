"""The TensorRT runtime, without TensorRT or a GPU: where it applies, the configs it writes, the one-line skip, the
manifest fields, and its use of the TensorRT API, against a fake `tensorrt` module that has the TensorRT 11 API
only. A removed API (BuilderFlag.FP16 or INT8, int8_calibrator, build_engine, max_workspace_size,
execute_async_v2, the binding calls) does not exist on the fake, so code that reaches for one fails here.

The fake "engine" runs the embedded ONNX file with ONNX Runtime, so a whole build publishes and verifies through it.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as pb

import build.runtimes.tensorrt as trt_runtime
from build.data import load_dataset
from build.errors import ModelRejected
from build.hardware import Hardware, int8_types
from build.pipeline import BuildOptions
from build.repository.model_config import build_config, from_pbtxt, model_io, to_pbtxt
from build.runtimes import RUNTIMES, make_runtime
from build.runtimes import Runtime as BuildRuntime
from build.runtimes.tensorrt import Buffer, TensorRTRuntime, capability_key, plan_filename
from build.steps.quantize import Int8Config, quantize
from build.variants import VARIANTS
from build.zoo import _usable_runtimes
from serving.manifest import Memory
from serving.release import target_release
from tests.conftest import CIFAR, ROOT, build_one, models_of, present

TRT_VERSION = target_release().tensorrt  # the fake claims the TensorRT of the release the build targets
GPU = Hardware("x86_64", 2, frozenset(), gpu="NVIDIA H100 80GB HBM3", gpu_capability=(9, 0))
NO_GPU = Hardware("x86_64", 2, frozenset())
MiB = 1 << 20

# --- the fake tensorrt module ------------------------------------------------------------------------------------

CALLS: list[tuple] = []  # (method, args) in call order
DEVICE_MEMORY: dict[int, np.ndarray] = {}  # what the fake device allocated, by address, for the fake engine to use
ALLOCATE = [lambda nbytes: None]  # the fake device's allocator, for the memory TensorRT itself takes


def record(name: str, *args) -> None:
    CALLS.append((name, args))


def called(name: str) -> list[tuple]:
    return [args for method, args in CALLS if method == name]


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError("ILogger.log is abstract in TensorRT: a logger overrides it")


Severity = ILogger.Severity


# The enums as each version's NvInfer.h numbers them (NVIDIA/TensorRT, include/NvInfer.h at the 10.14 and 11.1
# releases). TensorRT 11 removed FP16, INT8 and the other weak-typing flags, and renumbered the network flags:
# STRONGLY_TYPED (deprecated, always on) took EXPLICIT_BATCH's 0, and 1 is now PREFER_JIT_PYTHON_PLUGINS, so a
# hard-coded `1 << 1` would ask TensorRT 11 for JIT Python plugins instead.
class BuilderFlag10(enum.Enum):
    FP16, INT8, DEBUG, GPU_FALLBACK, REFIT, DISABLE_TIMING_CACHE, TF32, SPARSE_WEIGHTS = range(8)


class BuilderFlag(enum.Enum):  # TensorRT 11's
    DEBUG, GPU_FALLBACK, REFIT, DISABLE_TIMING_CACHE, TF32, SPARSE_WEIGHTS = range(2, 8)


class NetworkDefinitionCreationFlag10(enum.IntEnum):
    EXPLICIT_BATCH, STRONGLY_TYPED, PREFER_JIT_PYTHON_PLUGINS, PREFER_AOT_PYTHON_PLUGINS = range(4)


class NetworkDefinitionCreationFlag11(enum.IntEnum):
    STRONGLY_TYPED, PREFER_JIT_PYTHON_PLUGINS, PREFER_AOT_PYTHON_PLUGINS = range(3)


API: dict[int, tuple[type[enum.Enum], Any]] = {10: (BuilderFlag10, NetworkDefinitionCreationFlag10),
                                               11: (BuilderFlag, NetworkDefinitionCreationFlag11)}
RUNTIME_BYTES = 300 * MiB  # what creating a Runtime takes on the device (the fake's stand-in for libnvinfer's state)
KERNEL_BYTES = 200 * MiB  # what the first deserialization in a process loads (libnvinfer's kernels), once


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class TensorIOMode(enum.Enum):
    NONE, INPUT, OUTPUT = range(3)


class DataType(enum.Enum):
    FLOAT, HALF, INT8, INT32, BOOL, UINT8 = range(6)


NUMPY: dict[DataType, type[np.generic]] = {
    DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
    DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
ONNX_TYPES: dict[int, DataType] = {  # by TensorProto.DataType: the elem_type of a tensor, an int
    TensorProto.FLOAT: DataType.FLOAT, TensorProto.FLOAT16: DataType.HALF, TensorProto.UINT8: DataType.UINT8}


class Tensor:
    __slots__ = ("name", "shape", "dtype")

    def __init__(self, value_info: onnx.ValueInfoProto) -> None:
        tensor = value_info.type.tensor_type
        self.name, self.dtype = value_info.name, ONNX_TYPES[tensor.elem_type]
        self.shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)


class Network:  # __slots__ everywhere: setting an attribute the real object lacks fails, as it does in TensorRT
    __slots__ = ("flags", "inputs", "outputs", "onnx")

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.onnx = b""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> Tensor:
        return self.inputs[index]


class ParserError:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def desc(self) -> str:
        return self.message


class OnnxParser:
    __slots__ = ("network", "errors")

    def __init__(self, network: Network, logger: ILogger) -> None:
        self.network = network
        self.errors: list[ParserError] = []

    def parse_from_file(self, path: str) -> bool:
        record("parse_from_file", path)
        try:
            model = onnx.load(path)
        except Exception as exc:
            self.errors.append(ParserError(f"invalid ONNX: {type(exc).__name__}"))
            return False
        self.network.inputs = [Tensor(i) for i in model.graph.input]
        self.network.outputs = [Tensor(o) for o in model.graph.output]
        self.network.onnx = model.SerializeToString()
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> ParserError:
        return self.errors[index]


class OptimizationProfile:
    __slots__ = ("shapes",)

    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, min: tuple, opt: tuple, max: tuple) -> None:
        record("set_shape", name, min, opt, max)
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class TimingCache:
    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def serialize(self) -> bytes:
        return self.blob


class BuilderConfig:
    __slots__ = ("profiles", "cache", "tf32")

    def __init__(self) -> None:
        self.profiles: list[OptimizationProfile] = []
        self.cache: TimingCache | None = None
        self.tf32 = True  # TF32 is on by default in TensorRT

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        record("set_memory_pool_limit", pool, size)

    def set_flag(self, flag: BuilderFlag) -> None:
        record("set_flag", flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        record("clear_flag", flag)
        self.tf32 = self.tf32 and flag.name != "TF32"

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, blob: bytes) -> TimingCache:
        record("create_timing_cache", bytes(blob))
        return TimingCache(bytes(blob))

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        record("set_timing_cache", cache.blob, ignore_mismatch)
        if cache.blob.startswith(b"foreign"):  # as for a cache from another device or version
            return False
        self.cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self.cache


class Builder:
    __slots__ = ("logger", "trt")

    def __init__(self, logger: ILogger, trt: FakeTensorRT) -> None:
        self.logger, self.trt = logger, trt
        trt.loggers.append(logger)

    def create_network(self, flags: int = 0) -> Network:
        record("create_network", flags)
        return Network(flags)

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig()

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile()

    def build_serialized_network(self, network: Network, config: BuilderConfig) -> bytes | None:
        record("build_serialized_network")
        (profile,) = config.profiles
        inp, out = network.inputs[0], network.outputs[0]
        if inp.name not in profile.shapes or config.cache is None:
            self.trt.log(Severity.ERROR, "no profile for the dynamic input")
            return None
        config.cache = TimingCache(config.cache.blob + b"+timings")
        return json.dumps({
            "input": inp.name, "output": out.name, "profile": profile.shapes[inp.name],
            "dtypes": [inp.dtype.name, out.dtype.name], "classes": out.shape[1], "tf32": config.tf32,
            "strongly_typed": self.trt.strongly_typed(network.flags),
            "onnx": base64.b64encode(network.onnx).decode(),
        }).encode()


class Runtime:
    __slots__ = ("logger", "trt")

    def __init__(self, logger: ILogger, trt: FakeTensorRT) -> None:
        self.logger, self.trt = logger, trt
        trt.loggers.append(logger)
        ALLOCATE[0](RUNTIME_BYTES)

    def deserialize_cuda_engine(self, blob: bytes) -> Engine | None:
        record("deserialize_cuda_engine")
        if not self.trt.kernels_loaded:
            ALLOCATE[0](KERNEL_BYTES)
            self.trt.kernels_loaded = True
        try:
            plan = json.loads(blob)
        except ValueError:
            self.trt.log(Severity.ERROR, "The engine plan file is not compatible with this version of TensorRT")
            return None
        ALLOCATE[0](len(blob))  # the weights
        return Engine(plan)


class Engine:
    __slots__ = ("plan", "session")

    num_io_tensors = 2
    device_memory_size_v2 = MiB

    def __init__(self, plan: dict) -> None:
        self.plan, self.session = plan, ort.InferenceSession(base64.b64decode(plan["onnx"]))

    def get_tensor_name(self, index: int) -> str:
        return [self.plan["input"], self.plan["output"]][index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == self.plan["input"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.plan["dtypes"][self.get_tensor_mode(name) == TensorIOMode.OUTPUT]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple]:
        assert profile_index == 0 and name == self.plan["input"]
        return [tuple(s) for s in self.plan["profile"]]

    def create_execution_context(self) -> Context:
        ALLOCATE[0](self.device_memory_size_v2)  # the activations, for the largest shape of the profile
        return Context(self)


class Context:
    __slots__ = ("engine", "shape", "addresses")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shape: tuple[int, ...] | None = None
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        record("set_input_shape", name, tuple(shape))
        low, _, high = self.engine.plan["profile"]
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high)):
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        assert self.shape is not None, "the input shape is set before shapes are read"
        return self.shape if name == self.engine.plan["input"] else (self.shape[0], self.engine.plan["classes"])

    def set_tensor_address(self, name: str, address: int) -> bool:
        record("set_tensor_address", name, address)
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        record("execute_async_v3", stream_handle, self.shape)
        assert self.shape is not None, "the input shape is set before the engine runs"
        rows = self.shape[0]
        images = DEVICE_MEMORY[self.addresses[self.engine.plan["input"]]][:rows]
        logits = self.engine.session.run(None, {self.engine.plan["input"]: images})[0]
        DEVICE_MEMORY[self.addresses[self.engine.plan["output"]]][:rows] = logits
        return True


class FakeTensorRT(types.ModuleType):
    """The fake `tensorrt` module: its version, `nptype`, and the classes above under TensorRT's names, with the
    enums of the major version it claims. Like TensorRT, it logs through the first logger it was given, whichever
    Builder or Runtime later receives another."""

    def __init__(self, version: str = TRT_VERSION) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        major = int(version.split(".")[0])
        self.BuilderFlag, self.NetworkDefinitionCreationFlag = API[11 if major >= 11 else 10]
        self.ILogger, self.MemoryPoolType = ILogger, MemoryPoolType
        self.TensorIOMode, self.DataType = TensorIOMode, DataType
        self.OnnxParser = OnnxParser
        self.loggers: list[ILogger] = []
        self.kernels_loaded = False

    def Builder(self, logger: ILogger) -> Builder:  # TensorRT's class name (a method: it passes the module)
        return Builder(logger, self)

    def Runtime(self, logger: ILogger) -> Runtime:  # TensorRT's class name (a method: it passes the module)
        return Runtime(logger, self)

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        """TensorRT's one global logger: the first it was given."""
        self.loggers[0].log(severity, msg)

    def strongly_typed(self, flags: int) -> bool:
        """TensorRT 11 networks are always strongly typed, and refuse no flag; 10's need the flag's bit."""
        strongly = 1 << int(self.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return self.NetworkDefinitionCreationFlag is NetworkDefinitionCreationFlag11 or bool(flags & strongly)

    @staticmethod
    def nptype(dtype: DataType) -> type[np.generic]:
        return NUMPY[dtype]


class FakeDevice:
    """Host arrays standing in for GPU memory; the fake engine reads and writes them by address."""

    stream_handle = 7

    def __init__(self) -> None:
        self.free = 80 << 30
        ALLOCATE[0] = self.take

    def take(self, nbytes: int) -> None:
        self.free -= nbytes

    def capability(self) -> tuple[int, int]:
        return 9, 0

    def name(self) -> str:
        return "NVIDIA H100 80GB HBM3"

    def free_bytes(self) -> int:
        return self.free

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        device, host = np.zeros(shape, dtype), np.zeros(shape, dtype)
        DEVICE_MEMORY[device.ctypes.data] = device
        return Buffer(host, device.ctypes.data, device.nbytes, (device, host))

    def upload(self, buffer: Buffer, rows: int) -> None:
        buffer.handles[0][:rows] = buffer.handles[1][:rows]

    def download(self, buffer: Buffer, rows: int) -> None:
        buffer.handles[1][:rows] = buffer.handles[0][:rows]

    def mark(self) -> float:
        return time.perf_counter()

    def elapsed_ms(self, start: float, end: float) -> float:
        return (end - start) * 1e3

    def synchronize(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    # Handed to the runtime, not put in sys.modules: torch's exporter probes for a real `tensorrt` there.
    module = FakeTensorRT()
    monkeypatch.setattr(trt_runtime, "_trt", lambda: module)
    monkeypatch.setattr(trt_runtime, "find_spec", lambda name: object() if name == "tensorrt" else None)
    CALLS.clear()
    DEVICE_MEMORY.clear()
    return module


@pytest.fixture
def runtime(fake: FakeTensorRT) -> TensorRTRuntime:
    return TensorRTRuntime(device_factory=FakeDevice)


# --- small ONNX models -------------------------------------------------------------------------------------------


def conv_model(path: Path, weight_type: int = TensorProto.FLOAT, zero_point: tuple[int, int] | None = None,
               batch: str | int = "N", int32_bias: bool = False, float_bias: bool = False) -> Path:
    """uint8 images -> float -> (optionally Q/DQ with this zero point type and value) -> 1x1 conv (optionally with
    an INT32 bias behind a DequantizeLinear, as ONNX Runtime quantizes biases) -> mean: logits."""
    dtype = helper.tensor_dtype_to_np_dtype(weight_type)
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(10, 3, 1, 1)).astype(dtype), "w")
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=weight_type)]
    inits = [w, helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
    if zero_point:
        inits += [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]),
                  helper.make_tensor("z", zero_point[0], [], [zero_point[1]])]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant_images"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xq"])]
    conv_inputs = ["xq" if zero_point else "x", "w"]
    if int32_bias:
        inits += [helper.make_tensor("b_q", TensorProto.INT32, [10], list(range(10))),
                  helper.make_tensor("b_s", TensorProto.FLOAT, [], [0.01]),
                  helper.make_tensor("b_z", TensorProto.INT32, [], [0])]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], name="bias_dq"))
        conv_inputs.append("b")
    elif float_bias:
        inits.append(numpy_helper.from_array(np.linspace(-1, 1, 10).astype(dtype), "b"))
        conv_inputs.append("b")
    nodes += [helper.make_node("Conv", conv_inputs, ["c"]),
              helper.make_node("ReduceMean", ["c", "axes"], ["m"], keepdims=0),
              helper.make_node("Cast", ["m"], ["logits"], to=TensorProto.FLOAT)]
    inputs = [helper.make_tensor_value_info("images", TensorProto.UINT8, [batch, 3, 4, 4])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return path


def publish(runtime: TensorRTRuntime, onnx_path: Path, version_dir: Path):
    """What PublishRuntime does with a runtime: files, config.pbtxt, then a runner over them."""
    version_dir.mkdir(parents=True)
    files = runtime.prepare(onnx_path, version_dir)
    config = build_config("m", runtime.triton_fields(version_dir, threads=2), model_io((3, 4, 4)), 10)
    (version_dir.parent / "config.pbtxt").write_text(to_pbtxt(config))
    return files, config, runtime.runner(version_dir, threads=2)


def images(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)


def ort_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]


# --- where it applies, and where it can run ----------------------------------------------------------------------


def test_applies_to_fp32_fp16_and_every_int8_variant_and_says_why_not_to_the_rest() -> None:
    runtime = TensorRTRuntime()
    for name in ("fp32", "fp16", "int8", "pruned_int8", "distilled_int8", "distilled_int8_qat"):
        assert runtime.skip_variant(VARIANTS[name]) is None, name
    for name in ("pruned", "sparse", "distilled", "pruned_distilled"):
        why = runtime.skip_variant(VARIANTS[name])
        assert why is not None and "precision variants" in why and name in why


def test_what_a_variant_declares_decides_not_its_name() -> None:
    """An INT8 variant named without "int8" gets an engine; an FP32 one named "int8_like" does not."""
    runtime = TensorRTRuntime()
    assert runtime.skip_variant(dataclasses.replace(VARIANTS["int8"], name="w8a8")) is None
    assert runtime.skip_variant(dataclasses.replace(VARIANTS["pruned"], name="int8_like")) is not None


def test_the_file_decides_what_tensorrt_can_build(tmp_path: Path) -> None:
    runtime = TensorRTRuntime()
    assert runtime.skip_reason(conv_model(tmp_path / "fp32.onnx")) is None
    assert runtime.skip_reason(conv_model(tmp_path / "fp16.onnx", TensorProto.FLOAT16)) is None
    assert runtime.skip_reason(conv_model(tmp_path / "s8.onnx", zero_point=(TensorProto.INT8, 0))) is None
    unsigned = runtime.skip_reason(conv_model(tmp_path / "u8.onnx", zero_point=(TensorProto.UINT8, 128)))
    assert unsigned is not None and "UINT8" in unsigned and "symmetric" in unsigned and "quant_images" in unsigned
    asymmetric = runtime.skip_reason(conv_model(tmp_path / "a8.onnx", zero_point=(TensorProto.INT8, 3)))
    assert asymmetric is not None and "non-zero zero points" in asymmetric and "ActivationSymmetric=True" in asymmetric
    both = runtime.skip_reason(conv_model(tmp_path / "ub.onnx", zero_point=(TensorProto.UINT8, 128), int32_bias=True))
    assert both is not None and "INT32 biases behind DequantizeLinear (first at bias_dq)" in both
    assert "with QInt8 activations with extra_options ActivationSymmetric=True, extra_options QuantizeBias=False" \
        in both, "every fix a GPU INT8 needs, in one line"
    assert "fixed batch of 8" in present(runtime.skip_reason(conv_model(tmp_path / "b8.onnx", batch=8)))


def test_the_zoos_int8_on_a_gpu_machine_passes_and_its_cpu_encoding_does_not(tmp_path: Path) -> None:
    """The quantize step follows the requested runtimes: with TensorRT among them it writes what TensorRT takes."""
    src = conv_model(tmp_path / "fp32.onnx", float_bias=True)
    cpu_hw = Hardware("x86_64", 2, frozenset({"avx512f", "avx512_vnni"}))
    gpu_hw = dataclasses.replace(cpu_hw, gpu="H100", gpu_capability=(9, 0))
    files = {}
    for label, hw, runtimes in (("cpu", gpu_hw, ["onnxruntime"]), ("gpu", gpu_hw, ["onnxruntime", "tensorrt"])):
        files[label] = tmp_path / f"{label}.onnx"
        quantize(src, files[label], "images", images(64), Int8Config(calibration_images=64),
                 int8_types(hw, runtimes), [])
    why = TensorRTRuntime().skip_reason(files["cpu"])
    assert why is not None and "UINT8" in why and "INT32 biases" in why
    assert TensorRTRuntime().skip_reason(files["gpu"]) is None


def test_without_the_package_or_a_gpu_the_build_skips_it_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_runtime, "find_spec", lambda name: None)
    runtime = make_runtime("tensorrt")
    assert runtime.unavailable_reason(GPU) == 'the tensorrt package is not installed (pip install -e ".[tensorrt]")'
    logged: list[str] = []
    assert [r.name for r in _usable_runtimes(["onnxruntime", "tensorrt"], GPU, logged.append)] == ["onnxruntime"]
    assert logged == [f"skipping runtime tensorrt: {runtime.unavailable_reason(GPU)}"]


def test_the_package_alone_is_not_enough(fake: FakeTensorRT) -> None:
    runtime = TensorRTRuntime()
    assert "no CUDA GPU" in present(runtime.unavailable_reason(NO_GPU))
    assert runtime.unavailable_reason(GPU) is None
    fake.__version__ = "8.6.1"
    assert "too old" in present(runtime.unavailable_reason(GPU))


def test_a_tensorrt_the_target_release_cannot_load_is_not_used(fake: FakeTensorRT,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans load only in the TensorRT that built them: another version would publish plans the release's container
    refuses, so the runtime is skipped, saying which wheel to install."""
    runtime = TensorRTRuntime()
    fake.__version__ = "11.4.0.106"  # what `tensorrt-cu12>=10` resolved to
    reason = present(runtime.unavailable_reason(GPU))
    release = target_release()
    assert reason.startswith(f"TensorRT 11.4.0.106 is installed, and Triton {release.name} loads only plans of "
                             f"TensorRT {release.tensorrt}: pip install '{release.tensorrt_wheel}==")
    monkeypatch.setenv("TRITONZOO_TRITON_RELEASE", "24.10")
    fake.__version__ = "10.5.0.18"
    assert runtime.unavailable_reason(GPU) is None


def test_the_tensorrt_extra_pins_the_releases_tensorrt() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    release = target_release()
    assert extras["tensorrt"] == [f"{release.tensorrt_wheel}=={release.tensorrt}"]


@pytest.mark.parametrize("version, bit", [("10.14.1.48", 1), ("11.4.0.106", 0)])
def test_strong_typing_asks_for_each_versions_own_flag(tmp_path: Path, version: str, bit: int) -> None:
    """The flag's value differs between 10 and 11 (11 renumbered it to 0): the runtime reads it from the module."""
    module = FakeTensorRT(version)
    assert int(module.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == bit
    assert hasattr(module.BuilderFlag, "FP16") == (version.startswith("10."))
    CALLS.clear()
    settings = trt_runtime.BuildSettings(64, 64, 1 << 20)
    built = trt_runtime.build_plan(module, conv_model(tmp_path / "m.onnx"), settings, b"")
    assert called("create_network") == [(1 << bit,)] and json.loads(built.plan)["strongly_typed"]


def test_one_logger_serves_every_build_and_runner_and_errors_go_to_their_model(fake: FakeTensorRT,
                                                                               tmp_path: Path) -> None:
    """TensorRT logs through the first logger it got; each model's message holds its own errors only."""
    runtime = TensorRTRuntime(device_factory=FakeDevice)
    publish(runtime, conv_model(tmp_path / "good.onnx"), tmp_path / "a" / "1")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.sm90.plan").write_bytes(b"\x00 not a plan")
    with pytest.raises(ModelRejected) as first:
        runtime.runner(tmp_path / "bad", threads=2)
    assert len({id(logger) for logger in fake.loggers}) == 1, "one logger for the builder and every runtime"
    fake.log(Severity.ERROR, "an error of the first model")
    (tmp_path / "bad" / "model.sm90.plan").write_bytes(b"\x00 still not a plan")
    with pytest.raises(ModelRejected) as second:
        runtime.runner(tmp_path / "bad", threads=2)
    assert "not compatible" in str(first.value) and "an error of the first model" not in str(second.value)


def test_the_registry_does_not_import_tensorrt_or_cuda() -> None:
    """In a process of its own: another test module may have imported tensorrt where it is installed."""
    code = "import sys, build.runtimes; print(sorted({'tensorrt', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the builder's use of the API --------------------------------------------------------------------------------


def test_the_fake_has_none_of_the_apis_tensorrt_11_removed() -> None:
    """So that the tests below fail if the runtime reaches for one (as 11 claims it; the 10 fake keeps FP16 and INT8,
    which TensorRT 10 has, and the runtime must not use either)."""
    fake = FakeTensorRT("11.4.0.106")
    builder = fake.Builder(fake.ILogger())
    config = builder.create_builder_config()
    for owner, name in [(fake.BuilderFlag, "FP16"), (fake.BuilderFlag, "INT8"), (builder, "build_engine"),
                        (builder, "platform_has_fast_fp16"), (config, "int8_calibrator"),
                        (config, "max_workspace_size")]:
        assert not hasattr(owner, name), name
    with pytest.raises(AttributeError):
        config.int8_calibrator = object()  # type: ignore[attr-defined]  # the removed attribute, which must fail
    with pytest.raises(AttributeError):
        config.max_workspace_size = 1 << 30  # type: ignore[attr-defined]  # the removed attribute, which must fail
    assert not hasattr(Context, "execute_async_v2") and not hasattr(Context, "set_binding_shape")
    assert not hasattr(Engine, "get_binding_shape") and not hasattr(Engine, "device_memory_size")


def test_builds_a_strongly_typed_engine_with_a_profile_to_max_batch_size(runtime: TensorRTRuntime,
                                                                          tmp_path: Path) -> None:
    files, config, _ = publish(runtime, conv_model(tmp_path / "fp16.onnx", TensorProto.FLOAT16), tmp_path / "m" / "1")
    assert [f.name for f in files] == ["model.sm90.plan"]
    assert called("create_network") == [(1 << 1,)], "TensorRT 10's STRONGLY_TYPED is flag 1"
    assert called("set_memory_pool_limit") == [(MemoryPoolType.WORKSPACE, 1 << 30)]
    assert called("clear_flag") == [(BuilderFlag10.TF32,)] and called("set_flag") == [], "no precision flag, no TF32"
    (shape,) = called("set_shape")
    assert shape == ("images", (1, 3, 4, 4), (64, 3, 4, 4), (64, 3, 4, 4))
    assert shape[3][0] == config.max_batch_size, "the profile reaches the config's max_batch_size"
    plan = json.loads(files[0].read_bytes())
    assert plan["strongly_typed"] and not plan["tf32"]


def test_the_timing_cache_lives_beside_the_build_cache_and_is_reused(runtime: TensorRTRuntime, tmp_path: Path,
                                                                     isolated_cache: Path) -> None:
    src = conv_model(tmp_path / "fp32.onnx")
    publish(runtime, src, tmp_path / "a" / "1")
    cache = isolated_cache / "tensorrt" / f"timing-{TRT_VERSION}-nvidia-h100-80gb-hbm3-sm90.cache"
    assert cache.read_bytes() == b"+timings" and called("create_timing_cache") == [(b"",)]
    CALLS.clear()
    _, _, run = publish(runtime, src, tmp_path / "b" / "1")
    assert called("create_timing_cache") == [(b"+timings",)], "the second build starts from the first one's timings"
    assert runtime.describe(run)["timing_cache"] == {"path": str(cache), "reused": True}
    cache.write_bytes(b"foreign device")  # TensorRT refuses it: a fresh cache, not a failed model
    CALLS.clear()
    _, _, run = publish(runtime, src, tmp_path / "c" / "1")
    assert called("create_timing_cache") == [(b"foreign device",), (b"",)]
    assert runtime.describe(run)["timing_cache"]["reused"] is False


def test_a_file_tensorrt_cannot_parse_is_rejected_with_its_error(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelRejected, match="TensorRT could not parse bad.onnx: invalid ONNX"):
        runtime.prepare(bad, tmp_path)


def test_a_fixed_batch_is_refused_at_build_too(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    with pytest.raises(ModelRejected, match="dynamic first dimension"):
        runtime.prepare(conv_model(tmp_path / "b8.onnx", batch=8), tmp_path)


# --- the Triton config -------------------------------------------------------------------------------------------


def test_config_is_a_gpu_plan_named_by_compute_capability(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    _, config, _ = publish(runtime, conv_model(tmp_path / "fp32.onnx"), tmp_path / "m" / "1")
    parsed = from_pbtxt((tmp_path / "m" / "config.pbtxt").read_text())
    assert parsed == config
    assert parsed.platform == "tensorrt_plan" and not parsed.backend
    assert parsed.default_model_filename == "model.sm90.plan"
    assert dict(parsed.cc_model_filenames) == {"9.0": "model.sm90.plan"}
    (group,) = parsed.instance_group
    assert group.kind == pb.ModelInstanceGroup.KIND_GPU and group.count == 1
    assert parsed.max_batch_size == 64 and parsed.dynamic_batching.max_queue_delay_microseconds == 200
    assert list(parsed.input[0].dims) == [3, 4, 4] and parsed.input[0].data_type == pb.TYPE_UINT8


def test_plans_for_several_gpus_are_all_mapped(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    version_dir = tmp_path / "1"
    version_dir.mkdir()
    for age, name in enumerate(("model.sm86.plan", "model.sm120.plan", "model.sm90.plan", "labels.txt")):
        (version_dir / name).write_bytes(b"")
        os.utime(version_dir / name, ns=(age * 10**9, age * 10**9))
    fields = runtime.triton_fields(version_dir, threads=2)
    assert fields.cc_model_filenames == {"8.6": "model.sm86.plan", "12.0": "model.sm120.plan", "9.0": "model.sm90.plan"}
    assert fields.filename == "model.sm90.plan", "the default is the plan written last"
    assert [plan_filename(c) for c in ((7, 5), (10, 0))] == ["model.sm75.plan", "model.sm100.plan"]
    assert capability_key("model.sm100.plan") == "10.0" and capability_key("model.plan") is None


# --- running, timing, memory and the manifest --------------------------------------------------------------------


def test_runner_uses_execute_async_v3_and_chunks_batches_over_the_profile(runtime: TensorRTRuntime,
                                                                           tmp_path: Path) -> None:
    src = conv_model(tmp_path / "fp32.onnx")
    _, _, run = publish(runtime, src, tmp_path / "m" / "1")
    addresses = called("set_tensor_address")
    assert [name for name, _ in addresses] == ["images", "logits"], "the buffers are bound once"
    CALLS.clear()
    batch = images(150)
    np.testing.assert_allclose(run(batch), ort_logits(src, batch), rtol=1e-6, atol=1e-6)
    assert [args[1][0] for args in called("execute_async_v3")] == [64, 64, 22]
    assert {args[0] for args in called("execute_async_v3")} == {FakeDevice.stream_handle}
    assert [shape[0] for _, shape in called("set_input_shape")] == [64, 64, 22]
    assert called("set_tensor_address") == [], "addresses never change"


def test_device_timing_and_gpu_memory_are_reported(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    _, _, run = publish(runtime, conv_model(tmp_path / "fp32.onnx"), tmp_path / "m" / "1")
    assert run.device_speed() == {}, "the warm-up is not counted"
    for _ in range(3):
        run(images(1))
        run(images(64))
    speed = run.device_speed()
    assert speed["device_latency_b1_p50_ms"] > 0 and speed["device_throughput_b64_ips"] > 0
    memory = run.device_memory()
    plan_bytes = (tmp_path / "m" / "1" / "model.sm90.plan").stat().st_size
    assert memory["gpu_engine_mb"] == round((plan_bytes + MiB) / MiB, 1), \
        "weights and activations, as TensorRT took: not the Runtime's state nor libnvinfer's kernels"
    assert memory["gpu_activations_mb"] == 1.0
    io = 64 * 3 * 4 * 4 + 64 * 10 * 4
    assert memory["gpu_io_buffers_mb"] == round(io / MiB, 1)
    assert memory["gpu_peak_mb"] == round((plan_bytes + MiB + io) / MiB, 1)


def test_manifest_records_tensorrt_version_compute_capability_and_profile(runtime: TensorRTRuntime,
                                                                           tmp_path: Path) -> None:
    _, _, run = publish(runtime, conv_model(tmp_path / "fp16.onnx", TensorProto.FLOAT16), tmp_path / "m" / "1")
    info = runtime.describe(run)
    assert info["version"] == TRT_VERSION and info["compute_capability"] == "9.0"
    assert info["gpu"] == "NVIDIA H100 80GB HBM3" and info["plan"] == "model.sm90.plan"
    assert info["triton_container"] == target_release().image
    assert info["profile"] == {"min": 1, "opt": 64, "max": 64} and info["workspace_mb"] == 1024.0
    assert info["strongly_typed"] and info["tf32"] is False and info["precision_ran"] == "fp16"
    assert info["gpu_memory"]["gpu_peak_mb"] > 0
    json.dumps(info)  # it goes into manifest.json as it is


def test_an_unknown_tensorrt_version_names_no_container(fake: FakeTensorRT, tmp_path: Path) -> None:
    fake.__version__ = "11.4.0.106"
    runtime = TensorRTRuntime(device_factory=FakeDevice)
    _, _, run = publish(runtime, conv_model(tmp_path / "fp32.onnx"), tmp_path / "m" / "1")
    assert "none known here for TensorRT 11.4.0.106" in runtime.describe(run)["triton_container"]


def test_a_plan_from_elsewhere_is_rejected_with_tensorrts_message(runtime: TensorRTRuntime, tmp_path: Path) -> None:
    (tmp_path / "model.sm90.plan").write_bytes(b"\x00 serialized by another version")
    with pytest.raises(ModelRejected, match="could not load model.sm90.plan .*not compatible"):
        runtime.runner(tmp_path, threads=2)
    (tmp_path / "model.sm90.plan").rename(tmp_path / "model.sm86.plan")
    with pytest.raises(ModelRejected, match=r"no plan for this GPU \(compute capability 9.0\)"):
        runtime.runner(tmp_path, threads=2)


def test_opt_batch_must_lie_in_the_profile() -> None:
    with pytest.raises(ValueError, match="opt batch 65"):
        TensorRTRuntime(opt_batch_size=65)


# --- through a whole build ---------------------------------------------------------------------------------------


def test_a_build_publishes_verified_plans_and_says_where_tensorrt_does_not_apply(
        fake: FakeTensorRT, tmp_path: Path, teacher: Path, mini_archive: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RUNTIMES, "tensorrt", functools.partial(TensorRTRuntime, device_factory=FakeDevice))
    monkeypatch.setattr("build.zoo.detect", lambda: GPU)
    # Host memory is measured in a process of its own, which cannot see the fake: a stand-in figure.
    monkeypatch.setattr("build.steps.measure.peak_memory_mb",
                        lambda *args: Memory(process_peak_mb=2.0, model_peak_mb=1.0))
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)
    options = BuildOptions(verify_images=100, measure_speed=True, profile="quick", threads=1, max_train_steps=2,
                           train_runs=True, configs=(Int8Config(calibration_images=100, check_images=100),))
    result = build_one(data, teacher, tmp_path / "repo", ["fp32", "fp16", "int8", "sparse"],
                       ["onnxruntime", "tensorrt"], options)
    manifest = models_of(tmp_path / "repo")
    assert {"tiny_fp32_tensorrt", "tiny_fp16_tensorrt", "tiny_int8_tensorrt"} <= set(manifest), \
        "on a GPU machine the int8 variant is quantized as TensorRT takes it"
    assert result.rejected == {} and "precision variants" in result.not_applicable["tiny_sparse_tensorrt"]
    assert manifest["tiny_int8_tensorrt"]["runtime_info"]["precision_ran"] == "int8"
    entry = manifest["tiny_fp16_tensorrt"]
    assert entry["runtime"] == "tensorrt" and entry["files"].keys() == {"model.sm90.plan"}
    assert entry["runtime_info"]["compute_capability"] == "9.0" and entry["runtime_info"]["version"] == TRT_VERSION
    assert entry["verification"]["top1_agreement"] >= 0.995 and entry["max_batch_size"] == 64
    config = from_pbtxt((tmp_path / "repo" / "tiny_fp16_tensorrt" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and dict(config.cc_model_filenames) == {"9.0": "model.sm90.plan"}
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    # The build's interleaved timing ran the engines, and their own device timing and GPU memory joined it.
    assert entry["speed"]["throughput_b64_ips"] > 0 and entry["speed"]["device_throughput_b64_ips"] > 0
    assert entry["speed"]["device_latency_b1_p50_ms"] > 0 and "device_latency_b1_p50_ms" not in \
        manifest["tiny_fp16"]["speed"], "only device runners add device timings"
    assert entry["memory"]["model_peak_mb"] == 1.0 and entry["memory"]["gpu_peak_mb"] > 0
    onnx_config = from_pbtxt((tmp_path / "repo" / "tiny_fp16" / "config.pbtxt").read_text())
    assert onnx_config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU, "other runtimes keep the CPU"


def test_the_host_memory_baseline_is_read_after_the_runtimes_libraries_load(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    """build/peak_memory.py: libnvinfer and the CUDA context, shared by every TensorRT model, load before the
    baseline, so a model's figure (and the GPU pod's memory request made from it) is the model's own."""
    import build.peak_memory as peak_memory

    order: list[str] = []

    class Libraries:
        def load_libraries(self, model_dir: Path) -> None:
            order.append("libraries")

        def runner(self, model_dir: Path, threads: int):
            order.append("runner")
            return lambda images: images

    monkeypatch.setitem(RUNTIMES, "late_libraries", lambda: cast(BuildRuntime, Libraries()))
    def baseline() -> float:
        order.append("baseline")
        return 1.0

    monkeypatch.setattr(peak_memory, "_max_rss_mb", baseline)
    peak_memory.main("late_libraries", str(tmp_path), "1", "3x4x4")
    assert order[:3] == ["libraries", "baseline", "runner"]


def test_loading_tensorrts_libraries_makes_the_runtime_and_the_device(fake: FakeTensorRT, tmp_path: Path) -> None:
    runtime = TensorRTRuntime(device_factory=FakeDevice)
    runtime.load_libraries(tmp_path)
    assert len(fake.loggers) == 1 and isinstance(runtime.device(), FakeDevice)
