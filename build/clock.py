"""Where a build's time goes: seconds per phase, and the one line the build ends with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Clock:
    """Wall-clock seconds per phase (a step kind, a runtime's publishing, measuring, serving), added up across
    variants and cards; the phases of one build do not overlap, so they sum to its time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def line(self, shown: int = 7) -> str:
        """The total, then the longest phases, longest first, and the rest (untimed work included) as 'other'."""
        total = time.perf_counter() - self._start
        phases = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        parts = [f"{name} {_duration(s)}" for name, s in phases[:shown]]
        rest = total - sum(s for _, s in phases[:shown])
        if rest >= 0.5:
            parts.append(f"other {_duration(rest)}")
        return f"time: {_duration(total)} in all: " + ", ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
