"""Where an OpenVINO model's time goes: per convolution, its kernel, time and GMAC/s at batch 64.

The zoo report gives one GMAC/s figure per model against the measured AMX-INT8 peak; this splits it by layer,
so a shortfall can be pinned on the layers (e.g. the small late feature maps) rather than guessed at.
Run: `python -m build.ov_layers model_repository/resnet18_int8_openvino` (the settings of its config).
"""

from __future__ import annotations

import argparse
import statistics
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

    from build.runtimes.openvino import FILENAME, config_parameters
    from serving.backends.openvino.ov_session import OvSettings

    version = latest_version(model_dir, FILENAME)
    settings = OvSettings.from_parameters(config_parameters(version))
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


def table(layers: list[LayerTime], total_ms: float, threads: int, ceiling: float | None) -> str:
    """`ceiling`: the AMX-INT8 peak of these threads in GMAC/s, or None where it was not measured."""
    lines = [f"{'layer':36s} {'kernel':28s} {'output':>18s} {'ms':>7s} {'share':>6s} {'GMAC/s':>7s}"]
    for layer in sorted(layers, key=lambda x: -x.ms):
        lines.append(f"{layer.name[:36]:36s} {layer.kernel[:28]:28s} {str(layer.output):>18s} {layer.ms:7.2f} "
                     f"{layer.ms / total_ms:6.1%} {layer.gmacs_per_s:7.0f}")
    macs, ms = sum(x.macs for x in layers), sum(x.ms for x in layers)
    share = f" ({macs / ms / 1e6 / ceiling:.1%} of the measured AMX-INT8 peak of {threads} threads)" if ceiling else ""
    lines.append(f"convolutions: {ms:.2f} of {total_ms:.2f} ms per batch, {macs / ms / 1e6:.0f} GMAC/s{share}")
    return "\n".join(lines)


def layer_report(model_dir: Path, batch: int) -> str:
    layers, total_ms, threads = profile(model_dir, batch)
    return table(layers, total_ms, threads, measure_peaks(threads, detect().cpu_flags).gmacs_per_s.get("int8_amx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="an OpenVINO model folder of the repository")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(layer_report(args.model_dir, args.batch))


if __name__ == "__main__":
    main()
