"""This CPU's peak multiply-accumulate rates, measured: the denominators of the report's efficiency figures.

A nominal ceiling (cores x MACs per cycle x a clock) is not what a shared virtual machine delivers: the same
AMX-INT8 instruction stream ran about 3x slower on one of this project's machines than on another. So `peak.c`
is compiled with the system's C compiler and timed on the build's own threads, in the same run as the models.
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
    gmacs_per_s: dict[str, float] = field(default_factory=dict)  # kernel -> median of the runs
    unmeasured: dict[str, str] = field(default_factory=dict)  # kernel -> why not

    def summary(self) -> dict:
        return {"threads": self.threads, "gmacs_per_s": self.gmacs_per_s, "unmeasured": self.unmeasured,
                "method": "peak-instruction test (build/peak.c), median of runs, all threads at once"}


def measure(threads: int, cpu_flags: frozenset[str], seconds: float = 0.5, runs: int = 3) -> Peaks:
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
        rates, unmeasured = {}, {}
        for kernel, flag in KERNELS.items():
            if flag not in cpu_flags:
                unmeasured[kernel] = f"this CPU lacks {flag}"
                continue
            try:
                rates[kernel] = statistics.median(_run(binary, kernel, threads, seconds) for _ in range(runs))
            except RuntimeError as exc:
                unmeasured[kernel] = str(exc)
    return Peaks(threads, rates, unmeasured)


def _run(binary: Path, kernel: str, threads: int, seconds: float) -> float:
    done = subprocess.run([str(binary), kernel, str(threads), str(seconds)], capture_output=True, text=True,
                          timeout=30 + 10 * seconds)
    if done.returncode != 0:
        raise RuntimeError(f"{kernel} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return float(done.stdout)
