"""This CPU's peak multiply-accumulate rates, measured: the denominators of the report's efficiency figures.

A nominal ceiling (cores x MACs per cycle x a clock) is not what a shared virtual machine delivers, and on this
project's machines the AMX rate moved by a factor of two between two `invoke peak` runs a minute apart. So
`peak.c` is compiled with the system's C compiler and timed on the build's own threads, around the models'
own timing in the same build.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("peak.c")
# kernel -> the CPU flags (as /proc/cpuinfo names them) it needs
KERNELS = {
    "fp32_avx512": ("avx512f",), "fp32_avx2": ("avx2", "fma"),
    "int8_amx": ("amx_int8",), "int8_avx512_vnni": ("avx512_vnni",), "int8_avx_vnni": ("avx_vnni",),
    "bf16_amx": ("amx_bf16",), "bf16_avx512": ("avx512_bf16",),
}
# precision -> the kernels that compute in it; a model is judged against the best of them this CPU has
PRECISIONS = {
    "fp32": ("fp32_avx512", "fp32_avx2"),
    "int8": ("int8_amx", "int8_avx512_vnni", "int8_avx_vnni"),
    "bf16": ("bf16_amx", "bf16_avx512"),
}
X86 = ("x86_64", "amd64", "i686")


@dataclass(frozen=True)
class Peaks:
    threads: int
    runs: dict[str, list[float]] = field(default_factory=dict)  # kernel -> GMAC/s of each timed run
    unmeasured: dict[str, str] = field(default_factory=dict)  # kernel -> why not

    @property
    def gmacs_per_s(self) -> dict[str, float]:
        # The best run, not the median: a peak is a ceiling, and another process sharing the cores can only lower a
        # run. With the median, a build beside other work halved its "peak" and reported shares above 100%.
        return {k: round(max(r), 1) for k, r in self.runs.items()}

    def best(self) -> dict[str, dict]:
        """Per precision, the fastest kernel measured: the ceiling a model computing in it is judged against."""
        return best_peaks(self.gmacs_per_s)

    def merged(self, later: Peaks) -> Peaks:
        """Both measurements' runs, pooled."""
        runs = {k: self.runs.get(k, []) + later.runs.get(k, []) for k in self.runs.keys() | later.runs.keys()}
        return Peaks(self.threads, runs, {k: v for k, v in self.unmeasured.items() if k not in runs})

    def text(self) -> str:
        lines = [f"{k:16s} {rate:8.0f} GMAC/s on {self.threads} thread(s), best of runs "
                 f"{', '.join(f'{r:.0f}' for r in self.runs[k])}" for k, rate in self.gmacs_per_s.items()]
        return "\n".join(lines + [f"{k:16s} not measured: {why}" for k, why in self.unmeasured.items()])

    def summary(self) -> dict:
        return {"threads": self.threads, "gmacs_per_s": self.gmacs_per_s, "best": self.best(), "runs": self.runs,
                "unmeasured": self.unmeasured,
                "method": "peak-instruction test (build/peak.c), all threads at once; the best of the runs"}


def best_peaks(gmacs_per_s: dict[str, float]) -> dict[str, dict]:
    """{precision: {"kernel", "gmacs_per_s"}} for each precision with at least one measured kernel."""
    best = {}
    for precision, kernels in PRECISIONS.items():
        measured = [k for k in kernels if k in gmacs_per_s]
        if measured:
            top = max(measured, key=gmacs_per_s.__getitem__)
            best[precision] = {"kernel": top, "gmacs_per_s": gmacs_per_s[top]}
    return best


def measure(threads: int, cpu_flags: frozenset[str], seconds: float = 0.5, repeats: int = 3,
            machine: str | None = None) -> Peaks:
    """Times each kernel this CPU has; a kernel that cannot run is listed with the reason, never guessed."""
    machine = machine or platform.machine()
    if machine.lower() not in X86:
        return Peaks(threads, unmeasured={k: f"x86 kernel; this CPU is {machine}, and peak.c has no kernels for it "
                                             "yet, so no peak (and no efficiency) is measured" for k in KERNELS})
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
        for kernel, flags in KERNELS.items():
            missing = [f for f in flags if f not in cpu_flags]
            if missing:
                unmeasured[kernel] = f"this CPU lacks {' and '.join(missing)}"
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
