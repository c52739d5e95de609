"""Where an OpenVINO model's time goes: per convolution, its kernel, time, GMAC/s and share of the matching peak.

The zoo report gives one GMAC/s figure per model against the peak of its precision; this splits it by layer, each
convolution against the peak of the instructions its kernel uses on this CPU (AMX, AVX-512 VNNI, AVX-VNNI, AVX-512
BF16, AVX-512 or AVX2 FP32), so a shortfall can be pinned on the layers rather than guessed at.
Run: `python -m build.ov_layers model_repository/resnet18_int8_openvino` (the settings of its config).
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from build.errors import ZooError
from build.hardware import detect
from build.peak import measure as measure_peaks


@dataclass(frozen=True)
class LayerTime:
    name: str
    kernel: str
    output: tuple[int, ...]
    macs: int
    ms: float

    @property
    def gmacs_per_s(self) -> float:
        return self.macs / self.ms / 1e6 if self.ms else 0.0

    @property
    def peak_kernel(self) -> str | None:
        return peak_kernel(self.kernel)


# (precision, ISA) read off an OpenVINO primitive's name -> the peak.c kernel that bounds it
PEAK_KERNELS: dict[tuple[str, str | None], str] = {
    ("int8", "amx"): "int8_amx", ("int8", "avx512"): "int8_avx512_vnni", ("int8", "avx2"): "int8_avx_vnni",
    ("bf16", "amx"): "bf16_amx", ("bf16", "avx512"): "bf16_avx512",
    ("fp32", "avx512"): "fp32_avx512", ("fp32", "avx2"): "fp32_avx2"}


def peak_kernel(exec_type: str) -> str | None:
    """E.g. brgconv_avx512_amx_I8 -> int8_amx, jit_avx512_FP32 -> fp32_avx512; None where peak.c has no kernel for
    it (AVX2 INT8 without VNNI, SSE, reference kernels)."""
    name = exec_type.lower()
    suffix = name.rsplit("_", 1)[-1]
    precision = "int8" if suffix in ("i8", "u8") else "bf16" if suffix == "bf16" else "fp32"
    isa = next((i for i in ("amx", "avx512", "avx2") if i in name), None)
    if precision == "int8" and isa == "avx2" and "vnni" not in name:
        return None  # vpmaddubsw, not a VNNI dot product: no peak of that kind is measured
    return PEAK_KERNELS.get((precision, isa))


def conv_macs(model) -> dict[str, tuple[int, tuple[int, ...]]]:
    """MACs and output shape of every convolution of a static-shaped ov.Model, by name."""
    found = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            out, weights = tuple(op.get_output_shape(0)), list(op.get_input_shape(1))
            per_output = int(np.prod(weights[1:] if kind == "Convolution" else weights[2:]))
            found[op.get_friendly_name()] = (int(np.prod(out)) * per_output, out)
    return found


def profile(model_dir: Path, batch: int = 64, runs: int = 10) -> tuple[list[LayerTime], float, int]:
    """Per-convolution medians over `runs` batches, the whole batch's time, and the threads it ran on."""
    import openvino as ov

    from build.runtimes.openvino import FILENAME
    from serving.backends.openvino.ov_session import OvSettings
    from serving.in_process import model_config

    version = latest_version(model_dir, FILENAME)
    settings = OvSettings.from_config(model_config(version.parent))
    core = ov.Core()
    model = core.read_model(str(version / FILENAME))
    image_shape = [d.get_length() for d in model.input(0).get_partial_shape()[1:]]
    model.reshape([batch, *image_shape])
    macs = conv_macs(model)
    # One stream, so each run's counters cover the whole batch.
    compiled = core.compile_model(model, "CPU", {**settings.properties(), "NUM_STREAMS": "1", "PERF_COUNT": "YES"})
    request = compiled.create_infer_request()
    images = np.random.default_rng(0).integers(0, 256, (batch, *image_shape), dtype=np.uint8)
    times: dict[str, list[float]] = {}
    for i in range(runs + 2):
        request.infer({0: images})
        if i >= 2:  # warm-up
            for info in request.get_profiling_info():
                times.setdefault(info.node_name, []).append(info.real_time.total_seconds() * 1e3)
    kernels = {i.node_name: i.exec_type for i in request.get_profiling_info()}
    medians = {name: statistics.median(t) for name, t in times.items()}
    layers = [LayerTime(name, kernels[name], macs[name][1], macs[name][0], ms)
              for name, ms in medians.items() if name in macs]
    return layers, sum(medians.values()), int(compiled.get_property("INFERENCE_NUM_THREADS"))


def latest_version(model_dir: Path, filename: str) -> Path:
    """The newest version folder of a Triton model (a rebuild publishes the next number)."""
    versions = sorted((p for p in model_dir.glob("[0-9]*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions or not (versions[-1] / filename).exists():
        raise ZooError(f"{model_dir} holds no OpenVINO model ({filename} in a version folder)")
    return versions[-1]


def table(layers: list[LayerTime], total_ms: float, threads: int, peaks: dict[str, float]) -> str:
    """`peaks`: this CPU's measured GMAC/s per peak.c kernel on these threads; a kernel without one shows '–'."""
    lines = [f"{'layer':36s} {'kernel':28s} {'output':>18s} {'ms':>7s} {'share':>6s} {'GMAC/s':>7s} "
             f"{'peak kernel':>16s} {'of peak':>7s}"]
    for layer in sorted(layers, key=lambda x: -x.ms):
        peak = peaks.get(layer.peak_kernel or "")
        of_peak = f"{layer.gmacs_per_s / peak:7.1%}" if peak else f"{'–':>7s}"
        lines.append(f"{layer.name[:36]:36s} {layer.kernel[:28]:28s} {str(layer.output):>18s} {layer.ms:7.2f} "
                     f"{layer.ms / total_ms:6.1%} {layer.gmacs_per_s:7.0f} {layer.peak_kernel or 'none':>16s} "
                     f"{of_peak}")
    macs, ms = sum(x.macs for x in layers), sum(x.ms for x in layers)
    lines.append(f"convolutions: {ms:.2f} of {total_ms:.2f} ms per batch, {macs / ms / 1e6:.0f} GMAC/s"
                 f"{_overall_share(layers, macs / ms / 1e6, peaks, threads)}")
    return "\n".join(lines)


def _overall_share(layers: list[LayerTime], gmacs: float, peaks: dict[str, float], threads: int) -> str:
    """All convolutions against the peak of the kernel most of their MACs ran on."""
    by_kernel: Counter[str] = Counter()
    for layer in layers:
        by_kernel[layer.peak_kernel or "none"] += layer.macs
    main = by_kernel.most_common(1)[0][0] if by_kernel else "none"
    if main not in peaks:
        return f" (no measured peak for {main} on this CPU)"
    return f" ({gmacs / peaks[main]:.1%} of the measured {main} peak of {threads} threads)"


def layer_report(model_dir: Path, batch: int) -> str:
    layers, total_ms, threads = profile(model_dir, batch)
    peaks = measure_peaks(threads, detect().cpu_flags)
    unmeasured = "".join(f"\n{k}: not measured: {why}" for k, why in peaks.unmeasured.items())
    return table(layers, total_ms, threads, peaks.gmacs_per_s) + unmeasured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="an OpenVINO model folder of the repository")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(layer_report(args.model_dir, args.batch))


if __name__ == "__main__":
    main()
