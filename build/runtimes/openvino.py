"""OpenVINO on the CPU: the zoo's models compiled for AVX-512, VNNI and AMX.

Two runtimes share this module:
- `openvino` forces FP32 for every op a model leaves unquantized (on AMX CPUs OpenVINO would otherwise run
  FP32 models in BF16 without saying so); QDQ INT8 models still get INT8 kernels.
- `openvino_bf16` runs a float model in BF16: the CPU counterpart of the GPU's FP16 variant.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from build.errors import ModelRejected
from build.hardware import Hardware
from build.repository.model_config import RuntimeFields
from build.runtimes.base import Runtime
from build.verification import QUANTIZED, Tolerance

if TYPE_CHECKING:  # imported when used: without the openvino package this runtime is skipped, not fatal
    import openvino as ov

    from serving.backends.openvino.ov_session import OvSession, OvSettings

FILENAME = "model.xml"
X86 = ("x86_64", "AMD64")


def model_kind(onnx_path: Path) -> str:
    """int8 (QDQ), fp16 (FP16 weights) or fp32, read from the graph."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    if any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


@dataclass
class OpenVinoRuntime(Runtime["OvSession"]):
    name: str
    precision: str  # f32 or bf16, for the ops a model leaves unquantized
    max_drop_points: float | None = None
    # The tuning this build measured, per thread count: the runtime lives as long as its build (make_runtime).
    _tuned: dict[int, tuple[OvSettings, dict]] = field(default_factory=dict, repr=False)

    def unavailable_reason(self, hw: Hardware) -> str | None:
        if find_spec("openvino") is None:
            return "the openvino package is not installed (pip install openvino)"
        if hw.machine not in X86:
            return f"OpenVINO's CPU plugin is used here only on x86-64 CPUs; this one is {hw.machine}"
        if self.precision == "bf16" and not {"avx512_bf16", "amx_bf16"} & hw.cpu_flags:
            return "this CPU has neither AVX512-BF16 nor AMX-BF16: BF16 would be emulated, slower than FP32"
        return None

    def skip_reason(self, onnx_path: Path) -> str | None:
        kind = model_kind(onnx_path)
        if kind == "fp16":
            return "FP16 weights are for GPUs; on the CPU, openvino_bf16 of the fp32 variant is its counterpart"
        if kind == "int8" and self.precision == "bf16":
            return "an INT8 model runs its quantized ops in INT8 whatever the hint: the openvino runtime serves it"
        return None

    def prepare(self, onnx_path: Path, out_dir: Path) -> list[Path]:
        import openvino as ov

        try:
            model = _converted(str(onnx_path), onnx_path.stat().st_mtime_ns)
            # compress_to_fp16 would store FP16 weights: an FP32 model must stay FP32 on disk.
            ov.save_model(model, str(out_dir / FILENAME), compress_to_fp16=False)
        except Exception as exc:  # the converter raises bare RuntimeErrors and OpConversionFailure
            detail = " ".join(str(exc).split())[:400]
            raise ModelRejected(f"OpenVINO could not convert {onnx_path.name}: {detail}") from exc
        return [out_dir / FILENAME, out_dir / "model.bin"]

    def triton_fields(self, model_dir: Path, threads: int) -> RuntimeFields:
        settings, _ = self.tuned(model_dir, threads)
        # The native backend fixes the batch at max_batch_size unless padding is on; ours stays dynamic.
        return RuntimeFields(backend="openvino", filename=FILENAME,
                             parameters={**settings.parameters(), "ENABLE_BATCH_PADDING": "YES"})

    def runner(self, model_dir: Path, threads: int) -> OvSession:
        """The session the backend serves, from serving's factory and the model's config.pbtxt."""
        from serving.in_process import ov_runner

        return ov_runner(model_dir.parent, model_dir)

    def tolerance(self, variant: Tolerance) -> Tolerance:
        if self.precision == "bf16":  # 8-bit mantissas move every logit: held as a quantized model is
            return QUANTIZED
        return variant

    def describe(self, run: OvSession) -> dict:
        import openvino as ov

        tuning = next((t for s, t in self._tuned.values() if s == run.settings), {})
        return {"version": ov.get_version(), "settings": run.settings.parameters(),
                "precision_ran": run.precision(), "conv_kernels": run.conv_kernels(), "tuning": tuning}

    def tuned(self, model_dir: Path, threads: int) -> tuple[OvSettings, dict]:
        """Streams and threads for this machine, measured once per build on the first model it publishes."""
        if threads not in self._tuned:
            self._tuned[threads] = tune(model_dir / FILENAME, threads, self.precision)
        return self._tuned[threads]


@functools.lru_cache(maxsize=1)
def _converted(onnx_path: str, mtime_ns: int) -> ov.Model:
    """Both OpenVINO runtimes publish the same ONNX file one after the other: convert it once."""
    import openvino as ov

    return ov.convert_model(onnx_path)


def candidates(threads: int, precision: str) -> list[OvSettings]:
    from serving.backends.openvino.ov_session import OvSettings

    # INFERENCE_NUM_THREADS is the total over all streams: one thread per stream is `threads` threads.
    latency = OvSettings("LATENCY", 1, threads, precision)
    return [latency] if threads < 2 else [latency, OvSettings("THROUGHPUT", threads, threads, precision)]


def tune(model_path: Path, threads: int, precision: str, rounds: int = 3) -> tuple[OvSettings, dict]:
    """The candidate with the best batch-64 throughput as the backend serves (a whole batch on every stream),
    measured interleaved; batch-1 latency is recorded."""
    from serving.backends.openvino.ov_session import OvSession

    sessions = [OvSession(model_path, s) for s in candidates(threads, precision)]
    image_shape = [d.get_length() for d in sessions[0].input_shape[1:]]
    images = np.random.default_rng(0).integers(0, 256, (64, *image_shape), dtype=np.uint8)
    rates: list[list[float]] = [[] for _ in sessions]
    latencies: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        _served_rate(session, images, batches_per_stream=1)
    for _ in range(rounds):
        for i, session in enumerate(sessions):
            rates[i].append(_served_rate(session, images))
            for _ in range(10):
                start = time.perf_counter()
                session(images[:1])
                latencies[i].append(time.perf_counter() - start)
    results: list[dict[str, Any]] = [
        {"settings": s.settings.parameters(), "throughput_b64_ips": round(statistics.median(r), 1),
         "latency_b1_p50_ms": round(statistics.median(lat) * 1e3, 3)}
        for s, r, lat in zip(sessions, rates, latencies)]
    best = max(range(len(sessions)), key=lambda i: results[i]["throughput_b64_ips"])
    return sessions[best].settings, {"measured_on": model_path.parent.parent.name, "rounds": rounds,
                                     "candidates": results, "chosen": results[best]["settings"]}


def _served_rate(session: OvSession, images: np.ndarray, batches_per_stream: int = 3) -> float:
    """Images per second with every stream kept busy on whole batches, as the Triton backend runs them."""
    batches = batches_per_stream * session.settings.streams
    start = time.perf_counter()
    for _ in range(batches):
        session.start(images)  # waits while every stream is busy
    session.wait()
    return batches * len(images) / (time.perf_counter() - start)
