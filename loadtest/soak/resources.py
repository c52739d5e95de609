"""RSS and open descriptors of the stack's long-lived processes, read from /proc: one snapshot, and samples taken
in a background thread over the whole load, so that a leak (growing with each round of faults) can be told from a
connection opened once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path


def process_usage(pid: int) -> dict:
    """RSS (KiB) and open descriptors of one process, from /proc; None for a process that has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):  # gone, or a zombie (no VmRSS line)
        return {"pid": pid, "rss_kib": None, "fds": None}
    return {"pid": pid, "rss_kib": rss, "fds": fds}


def snapshot(processes: dict[str, int]) -> dict[str, dict]:
    """Each role's usage now."""
    return {role: process_usage(pid) for role, pid in processes.items()}


class ResourceSampler:
    """Every `interval_s`, from entering to leaving the `with`, each process `processes()` names (asked each time: a
    restarted process has a new pid, kept with its sample). The thread is a daemon and leaving the `with` ends it,
    so an error or Ctrl-C in the soak never waits on it, and `samples` holds what was taken until then."""

    def __init__(self, processes: Callable[[], dict[str, int]], interval_s: float) -> None:
        self.processes, self.interval_s = processes, interval_s
        self.samples: list[dict] = []    # {"at": wall clock, "role", "pid", "rss_kib", "fds"}
        self.error = ""                  # the first sample that failed, if one did; sampling goes on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-resources", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)  # one sample reads a few small /proc files: far less than this

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as exc:  # an hour's sampling must not end on one odd read
                self.error = self.error or f"{type(exc).__name__}: {exc}"
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> None:
        at = time.time()
        for role, pid in self.processes().items():
            usage = process_usage(pid)
            if usage["rss_kib"] is not None:  # a process killed and not yet restarted has nothing to show
                self.samples.append({"at": at, "role": role, **usage})


def since(samples: list[dict], t0: float) -> list[dict]:
    """The samples as soak.json keeps them: `t` in seconds since the load began (before 0: between the start
    snapshot and Locust's first request)."""
    return [{"t": round(s["at"] - t0, 3), "role": s["role"], "pid": s["pid"], "rss_kib": s["rss_kib"],
             "fds": s["fds"]} for s in samples]
