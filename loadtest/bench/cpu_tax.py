"""A CPU tax: spend a set share of a core, no more, for a bounded time.

The headroom benchmark runs it beside wrk (`wrk+tax`) to take from the machine the CPU that Locust spends above wrk.
If Locust then matches wrk-plus-tax, Locust drives Triton as hard as wrk would with the same CPU left to Triton: its
gap to plain wrk is the CPU the two share, not a limit of Locust as a load generator.
"""

from __future__ import annotations

import argparse
import time

SLICE_S = 0.002  # spin and sleep in slices this short, so the tax interleaves with Triton's work as a generator's does


def burn(cores: float, seconds: float) -> float:
    """Spend `cores` CPU seconds per wall second for `seconds`, catching up after any delay; returns CPU spent."""
    wall0, cpu0 = time.monotonic(), time.thread_time()
    while (elapsed := time.monotonic() - wall0) < seconds:
        owed = cores * elapsed - (time.thread_time() - cpu0)
        if owed <= 0:
            time.sleep(SLICE_S)
            continue
        until = time.thread_time() + min(owed, SLICE_S)
        while time.thread_time() < until:
            pass
    return time.thread_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=float, required=True, help="CPU seconds to spend per wall second (0-1)")
    parser.add_argument("--seconds", type=float, required=True, help="how long")
    args = parser.parse_args()
    if not 0 <= args.cores <= 1 or args.seconds <= 0:
        parser.error("--cores is 0 to 1 and --seconds positive")
    try:
        burn(args.cores, args.seconds)
    except KeyboardInterrupt:  # stopped with its generator
        pass


if __name__ == "__main__":
    main()
