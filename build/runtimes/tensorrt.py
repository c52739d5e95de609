"""TensorRT on an NVIDIA GPU: strongly typed engines built from the variant's own ONNX file, published for Triton's
TensorRT backend as `platform: "tensorrt_plan"`.

- Strongly typed networks (`NetworkDefinitionCreationFlag.STRONGLY_TYPED` in TensorRT 10, the only kind in 11):
  every tensor keeps the type its ONNX file gives it. The fp16 variant runs in FP16 because its graph is FP16, and
  an INT8 variant runs in INT8 because of its Q/DQ nodes. No precision flag is set: `BuilderFlag.FP16`/`INT8` and
  INT8 calibrators are gone in TensorRT 11.
- TF32 is switched off: an FP32 graph computes in FP32, as on every other runtime of the zoo, so `fp32` stays the
  exact baseline that every speed-up is measured against (the fp16 variant is the GPU's reduced precision).
- One optimization profile, batch 1 to `max_batch_size`, tuned at the maximum: under load Triton's dynamic batcher
  hands the engine large batches, and there the choice of kernels decides the throughput. A lone request is bound
  by kernel launches and copies, where a kernel chosen for 64 costs little.
- The plan is named by compute capability (`model.sm90.plan`) and listed in `cc_model_filenames`: a plan loads only
  on the GPU generation and in the TensorRT version that built it. The manifest records both.
- Device memory, the stream and the CUDA events come from torch (`TorchCuda`). The build already needs torch, with
  CUDA on a GPU machine, so this adds no pycuda or cuda-python.

Written for the TensorRT 10 and 11 Python APIs, but NOT RUN on any machine of this project (none has TensorRT and a
GPU together): tests/build/runtimes/test_tensorrt.py drives it against a fake `tensorrt` module, and
tests/e2e/test_tensorrt_e2e.py runs it for real where both exist.
"""

from __future__ import annotations

import importlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from tritonclient.grpc import model_config_pb2 as pb

from build.data.dataset import default_cache_dir
from build.errors import ModelRejected
from build.hardware import Hardware
from build.repository.model_config import Batching, RuntimeFields
from build.runtimes.base import Runtime
from build.verification import Tolerance
from serving.release import RELEASES, target_release

if TYPE_CHECKING:  # the registry imports the steps, which import the runtimes: the type alone is needed
    from build.variants.base import Variant

MAX_BATCH = Batching().max_batch_size  # what every config.pbtxt declares: the profile must reach it
WORKSPACE_BYTES = 1 << 30  # ample for convolution tactics at batch 64; keeps a build off the rest of a shared GPU
THROUGHPUT_BATCH = 64  # the batch build/measure.py times throughput at
# Q/DQ types TensorRT quantizes to, always symmetrically (zero point 0); UINT8 is not among them.
SIGNED_QDQ = (TensorProto.INT8, TensorProto.INT4, TensorProto.FLOAT8E4M3FN)
PLAN = re.compile(r"model\.sm(\d+)(\d)\.plan")  # major digits, then the minor digit: sm90 is 9.0, sm120 is 12.0


def plan_filename(capability: tuple[int, int]) -> str:
    return f"model.sm{capability[0]}{capability[1]}.plan"


def capability_key(filename: str) -> str | None:
    """The compute capability a plan file was built for, as Triton's cc_model_filenames spells it ("9.0")."""
    match = PLAN.fullmatch(filename)
    return f"{int(match.group(1))}.{match.group(2)}" if match else None


def triton_container(trt_version: str) -> str | None:
    """The NVIDIA Triton images whose TensorRT loads plans of this version, among the releases serving/release.py
    knows."""
    images = [r.image for r in RELEASES.values() if r.tensorrt_matches(trt_version)]
    return ", ".join(images) or None


def release_refusal(trt_version: str) -> str | None:
    """Why plans built by this TensorRT would not load in the target release's container."""
    release = target_release()
    if release.tensorrt_matches(trt_version):
        return None
    return (f"TensorRT {trt_version} is installed, and Triton {release.name} loads only plans of TensorRT "
            f"{release.tensorrt}: pip install '{release.tensorrt_wheel}=={release.tensorrt}' (the tensorrt extra), "
            f"or build for the release of TensorRT {trt_version} ($TRITONZOO_TRITON_RELEASE)")


def _trt() -> Any:
    """The tensorrt module, imported when used: without it this runtime is skipped, not fatal."""
    return importlib.import_module("tensorrt")


# --- where it applies -------------------------------------------------------------------------------------------


def variant_refusal(variant: Variant) -> str | None:
    """Engines for the precision variants only, as each variant declares itself: the baseline (the GPU's FP32
    reference) and every variant of another precision (fp16, every INT8 one, whatever its name)."""
    if variant.is_baseline or variant.precision != "fp32":
        return None
    return (f"TensorRT is built for the precision variants only (the {variant.baseline} baseline, fp16, every INT8 "
            f"one); {variant.name} is another FP32 model, and its INT8 form, where the zoo has one, gets an engine")


def model_precision(onnx_path: Path) -> str:
    """int8 (Q/DQ), fp16 (FP16 weights) or fp32: under strong typing, what the engine computes in."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        return "int8"
    if any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer):
        return "fp16"
    return "fp32"


def onnx_refusal(onnx_path: Path, max_batch: int) -> str | None:
    """Why TensorRT cannot build this file as a Triton plan, read from the graph before any build."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return _batch_refusal(graph, max_batch) or _qdq_refusal(graph)


def _batch_refusal(graph: onnx.GraphProto, max_batch: int) -> str | None:
    weights = {t.name for t in graph.initializer}
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        if tensor.name not in weights and dims and dims[0].HasField("dim_value"):
            return (f"input {tensor.name} has a fixed batch of {dims[0].dim_value}; a plan served with "
                    f"max_batch_size {max_batch} needs a dynamic first dimension")
    return None


def _qdq_refusal(graph: onnx.GraphProto) -> str | None:
    """TensorRT quantizes symmetrically to signed types only, and dequantizes only those: every Q/DQ tensor must be
    INT8 (or INT4, FP8) with zero point 0. ONNX Runtime's default QDQ breaks this twice: unsigned activations on
    x86, and INT32 biases."""
    constants = _constants(graph)
    problems: dict[str, str] = {}  # kind of problem -> the first node that has it
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            kind = _qdq_problem(node, constants)
            if kind:
                problems.setdefault(kind, node.name or node.op_type)
    if not problems:
        return None
    found = ", ".join(f"{QDQ_PROBLEMS[k][0]} (first at {n})" for k, n in problems.items())
    fixes = ", ".join(QDQ_PROBLEMS[k][1] for k in problems)
    return (f"TensorRT runs only signed, symmetric Q/DQ (INT8 with zero point 0, INT4, FP8); this model has {found}. "
            f"A GPU INT8 is quantized with {fixes}")


# kind -> (what the model has, the ONNX Runtime quantize_static setting that avoids it)
QDQ_PROBLEMS = {
    "unsigned": ("UINT8 (or other unsupported) quantized tensors, as the zoo's CPU INT8 quantizes activations",
                 "QInt8 activations with extra_options ActivationSymmetric=True"),
    "int32": ("INT32 biases behind DequantizeLinear", "extra_options QuantizeBias=False"),
    "asymmetric": ("non-zero zero points (asymmetric quantization)", "extra_options ActivationSymmetric=True"),
}


def _qdq_problem(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> str | None:
    # The quantized type: a DequantizeLinear's constant input, else the zero point's type. Neither known (absent,
    # or computed in the graph): TensorRT's parser judges it.
    zero = constants.get(node.input[2]) if len(node.input) > 2 else None
    source = constants.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
    known = source or zero
    quantized = known.data_type if known is not None else None
    if quantized == TensorProto.INT32:
        return "int32"
    if quantized is not None and quantized not in SIGNED_QDQ:
        return "unsigned"
    if zero is not None and zero.data_type in (TensorProto.INT8, TensorProto.INT4):
        return "asymmetric" if np.any(numpy_helper.to_array(zero) != 0) else None
    return None


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        values = [a.t for a in node.attribute if a.name == "value"] if node.op_type == "Constant" else []
        if values:
            found[node.output[0]] = values[0]
    return found


# --- building -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSettings:
    max_batch: int
    opt_batch: int
    workspace_bytes: int


@dataclass(frozen=True)
class BuiltPlan:
    plan: bytes
    timing_cache: bytes
    cache_reused: bool  # the saved timing cache was accepted: a rebuild skips the kernel timing it holds


def build_plan(trt: Any, onnx_path: Path, settings: BuildSettings, timing_cache: bytes) -> BuiltPlan:
    """A serialized, strongly typed engine from the ONNX file, and the timing cache as the build left it."""
    logger = shared_logger(trt)
    start = logger.mark()
    builder = trt.Builder(logger)
    # Needed for strong typing in TensorRT 10; accepted, and implied, in 11.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise ModelRejected(f"TensorRT could not parse {onnx_path.name}: {errors[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default: FP32 graphs must compute in FP32
    config.add_optimization_profile(_profile(builder, network, settings))
    reused = _use_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelRejected(f"TensorRT could not build an engine from {onnx_path.name}: {logger.error_text(start)}")
    return BuiltPlan(bytes(plan), bytes(config.get_timing_cache().serialize()), reused)


def _profile(builder: Any, network: Any, settings: BuildSettings) -> Any:
    if network.num_inputs != 1:
        raise ModelRejected(f"TensorRT: the zoo's models take one input; this network has {network.num_inputs}")
    tensor = network.get_input(0)
    shape = tuple(tensor.shape)
    sample = shape[1:]
    if not shape or shape[0] != -1 or any(d < 1 for d in sample):
        raise ModelRejected(f"TensorRT: input {tensor.name} has shape {list(shape)}; a plan with a batch profile "
                            "needs a dynamic first dimension (-1) and fixed sample dimensions")
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1, *sample), (settings.opt_batch, *sample), (settings.max_batch, *sample))
    return profile


def _use_timing_cache(config: Any, saved: bytes) -> bool:
    """Start from the saved timing cache; a fresh one when there is none or TensorRT refuses it (another version or
    device). Returns whether the saved one is in use."""
    if saved:
        try:
            cache = config.create_timing_cache(saved)
            if cache is not None and config.set_timing_cache(cache, False):
                return True
        except Exception:  # a truncated or foreign file: rebuild the timings rather than fail the model
            pass
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return False


@dataclass
class _Process:
    """What TensorRT holds once per process. Its logger is global: the first one given to a Builder or Runtime
    receives every message after, so one logger serves every build and runner, and each caller reads only the
    errors logged since its own mark. One Runtime, and the one-time cost of the first deserialization, too."""

    module: Any = None
    logger: Any = None
    runtime: Any = None
    libraries_loaded: bool = False


_PROCESS = _Process()


def _process(trt: Any) -> _Process:
    global _PROCESS
    if _PROCESS.module is not trt:  # a new module (the tests' fakes): start over
        _PROCESS = _Process(trt, _new_logger(trt))
    return _PROCESS


def shared_logger(trt: Any) -> Any:
    return _process(trt).logger


def shared_runtime(trt: Any) -> Any:
    process = _process(trt)
    if process.runtime is None:
        process.runtime = trt.Runtime(process.logger)
    return process.runtime


def load_libraries_once(trt: Any, plan: bytes) -> None:
    """The first engine deserialized in a process loads libnvinfer's kernels (and the handles of its tactic
    libraries) into the CUDA context: load one and drop it, so that what a model is charged with is its own."""
    process = _process(trt)
    if not process.libraries_loaded:  # a plan TensorRT refuses loads nothing: the next model's load warms up again
        process.libraries_loaded = shared_runtime(trt).deserialize_cuda_engine(plan) is not None


def _new_logger(trt: Any) -> Any:
    """Warnings and errors to stderr, as trt.Logger(WARNING) prints them, with the errors kept for messages."""
    severity = trt.ILogger.Severity
    shown = (severity.INTERNAL_ERROR, severity.ERROR, severity.WARNING)

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, level: Any, msg: str) -> None:
            if level in shown[:2]:
                self.errors.append(msg)
            if level in shown:
                print(f"[TensorRT] {msg}", file=sys.stderr)

        def mark(self) -> int:
            """Where the errors of what the caller does next begin."""
            return len(self.errors)

        def error_text(self, since: int) -> str:
            return " ".join(" ".join(self.errors[since:][-3:]).split())[:400] or "no error logged"

    return Logger()


def _write_atomically(path: Path, data: bytes) -> None:
    """Two builds may save the same cache at once: each writes its own file and renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# --- running ------------------------------------------------------------------------------------------------------


@dataclass
class Buffer:
    """A device buffer with its pinned host mirror, both sized for the largest batch."""

    host: np.ndarray
    address: int  # the device pointer TensorRT reads or writes
    nbytes: int
    handles: tuple = ()  # the objects that own the memory


class Device(Protocol):
    """What the runner needs of CUDA: memory, one stream and timing events (TorchCuda; a fake in the tests)."""

    stream_handle: int

    def capability(self) -> tuple[int, int]: ...

    def name(self) -> str: ...

    def free_bytes(self) -> int: ...

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer: ...

    def upload(self, buffer: Buffer, rows: int) -> None: ...

    def download(self, buffer: Buffer, rows: int) -> None: ...

    def mark(self) -> Any: ...

    def elapsed_ms(self, start: Any, end: Any) -> float: ...

    def synchronize(self) -> None: ...


class TorchCuda:
    """CUDA through torch, on the current device: tensors for memory, pinned host tensors for fast copies, a
    stream of its own, and CUDA events, which time the copies and the engine on the GPU itself."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        torch.cuda.init()
        self.stream = torch.cuda.Stream()
        self.stream_handle = self.stream.cuda_stream

    def capability(self) -> tuple[int, int]:
        major, minor = self.torch.cuda.get_device_capability()
        return major, minor

    def name(self) -> str:
        return self.torch.cuda.get_device_name()

    def free_bytes(self) -> int:
        return self.torch.cuda.mem_get_info()[0]

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        kind = self.torch.from_numpy(np.empty(0, dtype)).dtype
        device = self.torch.empty(shape, dtype=kind, device="cuda")
        host = self.torch.empty(shape, dtype=kind, pin_memory=True)
        return Buffer(host.numpy(), device.data_ptr(), device.nbytes, (device, host))

    def upload(self, buffer: Buffer, rows: int) -> None:
        device, host = buffer.handles
        with self.torch.cuda.stream(self.stream):
            device[:rows].copy_(host[:rows], non_blocking=True)

    def download(self, buffer: Buffer, rows: int) -> None:
        device, host = buffer.handles
        with self.torch.cuda.stream(self.stream):
            host[:rows].copy_(device[:rows], non_blocking=True)

    def mark(self) -> Any:
        event = self.torch.cuda.Event(enable_timing=True)
        event.record(self.stream)
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end)

    def synchronize(self) -> None:
        self.stream.synchronize()


def io_names(trt: Any, engine: Any) -> tuple[str, str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelRejected(f"TensorRT engine has inputs {inputs} and outputs {outputs}; the zoo serves one of each")
    return inputs[0], outputs[0]


class TrtRunner:
    """An engine on one CUDA stream, called on uint8 images; a batch over the profile's maximum runs in chunks."""

    def __init__(self, plan_path: Path, device: Device) -> None:
        trt = _trt()
        self.plan_path, self.device, self.trt_version = plan_path, device, trt.__version__
        self.logger = shared_logger(trt)
        plan = plan_path.read_bytes()
        load_libraries_once(trt, plan)
        # Read after the CUDA context, the Runtime and libnvinfer's kernels are in place: what follows is the model's.
        free = device.free_bytes()
        start = self.logger.mark()
        self.runtime = shared_runtime(trt)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ModelRejected(f"TensorRT {trt.__version__} could not load {plan_path.name} (built by another "
                                f"version, or for another GPU?): {self.logger.error_text(start)}")
        self.context = self.engine.create_execution_context()
        engine_bytes = free - device.free_bytes()  # weights and activation memory, allocated by TensorRT itself
        self.input, self.output = io_names(trt, self.engine)
        self.profile = [tuple(s) for s in self.engine.get_tensor_profile_shape(self.input, 0)]
        largest = self.profile[2]
        self.max_batch, self.sample_shape = largest[0], largest[1:]
        self._set_shape(largest)
        dtypes = [np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in (self.input, self.output)]
        self.inp = device.buffer(largest, dtypes[0])
        self.out = device.buffer(tuple(self.context.get_tensor_shape(self.output)), dtypes[1])
        # Sized for the largest batch; a smaller one uses their first rows, so the addresses are set once.
        for name, buffer in ((self.input, self.inp), (self.output, self.out)):
            start = self.logger.mark()
            if not self.context.set_tensor_address(name, buffer.address):
                raise ModelRejected(f"TensorRT refused the buffer for {name}: {self.logger.error_text(start)}")
        self.device_ms: dict[int, list[float]] = {}
        free = device.free_bytes()
        self(np.zeros(largest, self.inp.host.dtype))  # warm-up at the largest shape, where memory peaks
        engine_bytes += max(0, free - device.free_bytes())
        self.device_ms.clear()
        activations = getattr(self.engine, "device_memory_size_v2", None) or 0  # 10.1+; its v1 is gone in 11
        self.gpu_memory = {"gpu_peak_mb": _mib(engine_bytes + self.inp.nbytes + self.out.nbytes),
                           "gpu_engine_mb": _mib(engine_bytes), "gpu_activations_mb": _mib(activations),
                           "gpu_io_buffers_mb": _mib(self.inp.nbytes + self.out.nbytes)}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        chunks = [self._run(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        self.device_ms.setdefault(len(images), []).append(sum(ms for _, ms in chunks))
        return np.concatenate([logits for logits, _ in chunks])

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        rows = len(batch)
        self.inp.host[:rows] = batch
        start = self.device.mark()
        self.device.upload(self.inp, rows)
        self._set_shape((rows, *self.sample_shape))
        since = self.logger.mark()
        if not self.context.execute_async_v3(self.device.stream_handle):
            raise ModelRejected(f"TensorRT failed to run {self.plan_path.name}: {self.logger.error_text(since)}")
        self.device.download(self.out, rows)
        end = self.device.mark()
        self.device.synchronize()
        return self.out.host[:rows].copy(), self.device.elapsed_ms(start, end)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        start = self.logger.mark()
        if not self.context.set_input_shape(self.input, shape):
            raise ModelRejected(f"TensorRT refused input shape {list(shape)} (profile {self.profile}): "
                                f"{self.logger.error_text(start)}")

    def device_speed(self) -> dict[str, float]:
        """Medians of the CUDA-event times (copies in, engine, copies out), without Python or host waits."""
        out = {}
        if self.device_ms.get(1):
            out["device_latency_b1_p50_ms"] = round(statistics.median(self.device_ms[1]), 3)
        if self.device_ms.get(THROUGHPUT_BATCH):
            median_ms = statistics.median(self.device_ms[THROUGHPUT_BATCH])
            out["device_throughput_b64_ips"] = round(THROUGHPUT_BATCH * 1e3 / median_ms, 1)
        return out

    def device_memory(self) -> dict[str, float]:
        return dict(self.gpu_memory)


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


# --- the runtime --------------------------------------------------------------------------------------------------


@dataclass
class TensorRTRuntime(Runtime["TrtRunner"]):
    name: str = "tensorrt"
    max_drop_points: float | None = None  # strongly typed: it computes in the precision of the variant's own file
    max_batch_size: int = MAX_BATCH
    opt_batch_size: int = MAX_BATCH  # see the module docstring
    workspace_bytes: int = WORKSPACE_BYTES
    cache_dir: Path | None = None  # timing caches; None: $TRITONZOO_CACHE/tensorrt, beside the build's other caches
    device_factory: Callable[[], Device] = TorchCuda
    # The build's one CUDA stream and what it built: the runtime lives as long as its build (make_runtime).
    _device: Device | None = field(default=None, repr=False)
    _built: dict[Path, dict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch_size <= self.max_batch_size:
            raise ValueError(f"opt batch {self.opt_batch_size} must lie in 1..{self.max_batch_size}")

    def unavailable_reason(self, hw: Hardware) -> str | None:
        if find_spec("tensorrt") is None:
            return 'the tensorrt package is not installed (pip install -e ".[tensorrt]")'
        if hw.gpu is None:
            return "no CUDA GPU is visible to torch (none here, or a CPU-only torch build): TensorRT needs one"
        try:
            version = _trt().__version__
        except Exception as exc:  # a wheel for another CUDA, or missing libraries
            return f"the tensorrt package does not import: {' '.join(str(exc).split())[:200]}"
        if int(version.split(".")[0]) < 10:
            return f"TensorRT {version} is too old: this runtime uses the TensorRT 10 and 11 API"
        return release_refusal(version)

    def load_libraries(self, model_dir: Path) -> None:
        """Before a memory baseline (build/peak_memory.py): the CUDA context, libnvinfer and its Runtime, which
        every TensorRT model in the server shares, so that no model's figure includes them."""
        shared_runtime(_trt())
        self.device()

    def skip_variant(self, variant: Variant) -> str | None:
        return variant_refusal(variant)

    def skip_reason(self, onnx_path: Path) -> str | None:
        return onnx_refusal(onnx_path, self.max_batch_size)

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        trt, device = _trt(), self.device()
        cache = self.timing_cache_path(trt.__version__, device)
        settings = BuildSettings(self.max_batch_size, self.opt_batch_size, self.workspace_bytes)
        start = time.perf_counter()
        try:
            built = build_plan(trt, onnx_path, settings, cache.read_bytes() if cache.exists() else b"")
        except ModelRejected:
            raise
        except Exception as exc:  # the bindings raise RuntimeError and TypeError carrying TensorRT's message
            raise ModelRejected(f"TensorRT could not build {onnx_path.name}: {' '.join(str(exc).split())[:400]}") \
                from exc
        _write_atomically(cache, built.timing_cache)
        target = out_dir / plan_filename(device.capability())
        target.write_bytes(built.plan)
        seconds = round(time.perf_counter() - start, 1)
        self._built[target] = {"precision": model_precision(onnx_path), "build_s": seconds,
                               "timing_cache": {"path": str(cache), "reused": built.cache_reused}}
        return [target]

    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        plans = sorted((p for p in model_dir.iterdir() if capability_key(p.name)), key=lambda p: p.stat().st_mtime_ns)
        if not plans:
            raise ModelRejected(f"no TensorRT plan (model.sm<capability>.plan) in {model_dir}")
        # Triton loads the plan mapped to its GPU's capability, else the default: the one this build made, whose
        # load on another GPU fails with TensorRT's own message about the mismatch.
        return RuntimeFields(platform="tensorrt_plan", filename=plans[-1].name,
                             instance_kind=pb.ModelInstanceGroup.KIND_GPU,
                             cc_model_filenames={key: p.name for p in plans if (key := capability_key(p.name))})

    def runner(self, model_dir: Path, threads: int) -> TrtRunner:
        device = self.device()
        plan = model_dir / plan_filename(device.capability())
        if not plan.exists():
            built = sorted(p.name for p in model_dir.glob("model.sm*.plan"))
            raise ModelRejected(f"no plan for this GPU (compute capability {'.'.join(map(str, device.capability()))})"
                                f" in {model_dir}; it holds {built}")
        return TrtRunner(plan, device)

    def tolerance(self, variant: Tolerance) -> Tolerance:
        return variant  # strongly typed: the variant's own precision, so the variant's own tolerance

    def device_speed(self, run: TrtRunner) -> dict[str, float]:
        return run.device_speed()

    def device_memory(self, run: TrtRunner) -> dict[str, float]:
        return run.device_memory()

    def describe(self, run: TrtRunner) -> dict:
        major, minor = run.device.capability()
        built = self._built.get(run.plan_path, {})
        container = triton_container(run.trt_version)
        return {
            "version": run.trt_version, "compute_capability": f"{major}.{minor}", "gpu": run.device.name(),
            "plan": run.plan_path.name, "strongly_typed": True, "tf32": False,
            "precision_ran": built.get("precision"),
            "profile": {"min": run.profile[0][0], "opt": run.profile[1][0], "max": run.profile[2][0]},
            "workspace_mb": _mib(self.workspace_bytes), "build_s": built.get("build_s"),
            "timing_cache": built.get("timing_cache"), "gpu_memory": run.device_memory(),
            "triton_container": container or f"none known here for TensorRT {run.trt_version}: serve it with the "
                                              "NVIDIA Triton release whose notes list this TensorRT version",
        }

    def device(self) -> Device:
        """One CUDA stream for every engine this build runs; they run one at a time."""
        if self._device is None:
            self._device = self.device_factory()
        return self._device

    def timing_cache_path(self, trt_version: str, device: Device) -> Path:
        """Timings hold for one TensorRT version on one GPU model: one file per pair."""
        root = self.cache_dir or default_cache_dir() / "tensorrt"
        gpu = re.sub(r"[^a-z0-9]+", "-", device.name().lower()).strip("-")
        major, minor = device.capability()
        return Path(root) / f"timing-{trt_version}-{gpu}-sm{major}{minor}.cache"
