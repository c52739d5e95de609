"""`python -m build.peak_memory RUNTIME MODEL_DIR THREADS CxHxW`: print the peak RSS of loading and running.

A process of its own, because a peak never goes down: measured inside the build it would report the
largest thing the build ever held. VmHWM rather than ru_maxrss, which Linux carries across exec from
the (much larger) parent.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from build.runtimes import make_runtime


def _max_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None, "no VmHWM in /proc/self/status"
    return int(match.group(1)) / 1024


def main(runtime: str, model_dir: str, threads: str, shape: str) -> None:
    images = np.zeros((64, *map(int, shape.split("x"))), dtype=np.uint8)
    chosen = make_runtime(runtime)
    # A runtime whose libraries load on first use (TensorRT: libnvinfer and the CUDA context) loads them now, so
    # that the baseline holds what every model of that runtime shares, and the figure counts the model alone.
    chosen.load_libraries(Path(model_dir))
    before = _max_rss_mb()  # the runtime's libraries are loaded: this counts the model and its buffers
    run = chosen.runner(Path(model_dir), int(threads))
    for _ in range(3):
        run(images)
    peak = _max_rss_mb()
    print(json.dumps({"process_peak_mb": round(peak, 1), "model_peak_mb": round(peak - before, 1)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
