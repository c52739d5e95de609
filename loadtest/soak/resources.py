"""RSS and open descriptors of the stack's long-lived processes with their children (psutil): one snapshot, and
samples taken in a background thread over the whole load, so that a leak (growing with each round of faults) can be
told from a connection opened once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil


def process_usage(pid: int, others: frozenset[int] = frozenset()) -> dict:
    """RSS (KiB) and open descriptors of a process and its descendants, and how many they are; None for a process
    that has gone. The tree, because Triton runs each model in a stub process of its own (the Python-based
    backends), and most of a replica's memory is theirs (`ps --ppid <tritonserver pid> -o rss,cmd` shows them).
    `others`: processes counted in roles of their own, left out with their descendants (the soak's own process is
    the parent of the whole stack)."""
    try:
        root = psutil.Process(pid)
        rss, fds = root.memory_info().rss, root.num_fds()
        children = root.children()
    except psutil.Error:  # gone, or a zombie
        return {"pid": pid, "rss_kib": None, "fds": None, "processes": 0}
    alive = 1
    while children:
        child = children.pop()
        if child.pid in others:
            continue
        try:
            rss, fds, alive = rss + child.memory_info().rss, fds + child.num_fds(), alive + 1
            children += child.children()
        except psutil.Error:  # a child ended between the listing and the reading: it holds nothing now
            pass
    return {"pid": pid, "rss_kib": rss // 1024, "fds": fds, "processes": alive}


def snapshot(processes: dict[str, int]) -> dict[str, dict]:
    """Each role's usage now."""
    others = frozenset(processes.values())
    return {role: process_usage(pid, others - {pid}) for role, pid in processes.items()}


class ResourceSampler:
    """Every `interval_s`, from entering to leaving the `with`, each process `processes()` names (asked each time: a
    restarted process has a new pid, kept with its sample). The thread is a daemon and leaving the `with` ends it,
    so an error or Ctrl-C in the soak never waits on it, and `samples` holds what was taken until then."""

    def __init__(self, processes: Callable[[], dict[str, int]], interval_s: float) -> None:
        self.processes, self.interval_s = processes, interval_s
        self.samples: list[dict] = []    # {"at": wall clock, "role", "pid", "rss_kib", "fds", "processes"}
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
        for role, usage in snapshot(self.processes()).items():
            if usage["rss_kib"] is not None:  # a process killed and not yet restarted has nothing to show
                self.samples.append({"at": at, "role": role, **usage})


def since(samples: list[dict], t0: float) -> list[dict]:
    """The samples as soak.json keeps them: `t` in seconds since the load began (before 0: between the start
    snapshot and Locust's first request)."""
    return [{"t": round(s["at"] - t0, 3), **{k: v for k, v in s.items() if k != "at"}} for s in samples]
