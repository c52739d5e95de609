"""This CPU's peak multiply-accumulate rates, measured: the denominators of the report's efficiency figures.

A nominal ceiling (cores x MACs per cycle x a clock) is not what a shared virtual machine delivers, and on this
project's machines the AMX rate moved by a factor of two between two `invoke peak` runs a minute apart. So
`peak.c` is compiled with the system's C compiler and timed on the build's own threads, around the models'
own timing in the same build.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("peak.c")
# kernel -> the CPU flag it needs
KERNELS = {"fp32_avx512": "avx512f", "int8_amx": "amx_int8", "bf16_amx": "amx_bf16"}


@dataclass(frozen=True)
class Peaks:
    threads: int
    runs: dict[str, list[float]] = field(default_factory=dict)  # kernel -> GMAC/s of each timed run
    unmeasured: dict[str, str] = field(default_factory=dict)  # kernel -> why not

    @property
    def gmacs_per_s(self) -> dict[str, float]:
        return {k: round(statistics.median(r), 1) for k, r in self.runs.items()}

    def merged(self, later: Peaks) -> Peaks:
        """Both measurements' runs, pooled."""
        runs = {k: self.runs.get(k, []) + later.runs.get(k, []) for k in self.runs.keys() | later.runs.keys()}
        return Peaks(self.threads, runs, {k: v for k, v in self.unmeasured.items() if k not in runs})

    def text(self) -> str:
        lines = [f"{k:12s} {rate:8.0f} GMAC/s on {self.threads} thread(s), median of runs "
                 f"{', '.join(f'{r:.0f}' for r in self.runs[k])}" for k, rate in self.gmacs_per_s.items()]
        return "\n".join(lines + [f"{k:12s} not measured: {why}" for k, why in self.unmeasured.items()])

    def summary(self) -> dict:
        return {"threads": self.threads, "gmacs_per_s": self.gmacs_per_s, "runs": self.runs,
                "unmeasured": self.unmeasured,
                "method": "peak-instruction test (build/peak.c), all threads at once; median of the runs"}


def measure(threads: int, cpu_flags: frozenset[str], seconds: float = 0.5, repeats: int = 3) -> Peaks:
    """Times each kernel this CPU has; a kernel that cannot run is listed with the reason, never guessed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return Peaks(threads, unmeasured={k: "no C compiler (apt-get install gcc)" for k in KERNELS})
    with tempfile.TemporaryDirectory(prefix="tritonzoo-peak-") as tmp:
        binary = Path(tmp) / "peak"
        built = subprocess.run([compiler, "-O3", "-pthread", str(SOURCE), "-o", str(binary)],
                               capture_output=True, text=True)
        if built.returncode != 0:
            reason = f"{Path(compiler).name} could not build peak.c: {built.stderr.strip()[-300:]}"
            return Peaks(threads, unmeasured={k: reason for k in KERNELS})
        runs, unmeasured = {}, {}
        for kernel, flag in KERNELS.items():
            if flag not in cpu_flags:
                unmeasured[kernel] = f"this CPU lacks {flag}"
                continue
            try:
                runs[kernel] = [_run(binary, kernel, threads, seconds) for _ in range(repeats)]
            except RuntimeError as exc:
                unmeasured[kernel] = str(exc)
    return Peaks(threads, runs, unmeasured)


def _run(binary: Path, kernel: str, threads: int, seconds: float) -> float:
    done = subprocess.run([str(binary), kernel, str(threads), str(seconds)], capture_output=True, text=True,
                          timeout=30 + 10 * seconds)
    if done.returncode != 0:
        raise RuntimeError(f"{kernel} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return float(done.stdout)
