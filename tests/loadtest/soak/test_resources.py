from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from loadtest.soak.resources import ResourceSampler, process_usage, since, snapshot


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen]]:
    """Real processes to sample, each stopped at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(["sleep", "60"]))
        # Until exec, the child is a fork of this process with its descriptors: sampled then, it would not be sleep's
        wait_until(lambda: psutil.Process(started[-1].pid).name() == "sleep")
        return started[-1]

    yield start
    for p in started:
        p.kill()
        p.wait()


def wait_until(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_usage_adds_up_the_process_tree_as_triton_s_model_stubs_need() -> None:
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        wait_until(lambda: process_usage(parent.pid)["processes"] == 3)
        tree = process_usage(parent.pid)
        children = [c.pid for c in psutil.Process(parent.pid).children()]
        assert tree["fds"] == sum(len(os.listdir(f"/proc/{p}/fd")) for p in [parent.pid, *children])
        assert tree["rss_kib"] > max(process_usage(c)["rss_kib"] for c in children)
        one_out = process_usage(parent.pid, frozenset(children[:1]))  # a child of its own role: not counted here
        assert one_out["processes"] == 2 and one_out["fds"] == tree["fds"] - len(os.listdir(f"/proc/{children[0]}/fd"))
        roles = snapshot({"parent": parent.pid, "child": children[0]})
        assert roles["parent"]["processes"] == 2 and roles["child"]["processes"] == 1
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()


def test_usage_reads_rss_and_descriptors_from_proc_and_none_for_a_process_gone(sleeper) -> None:
    mine = process_usage(os.getpid())
    assert mine["rss_kib"] > 1000 and mine["fds"] >= 3  # a Python process: MiBs, stdin/out/err at least
    gone = sleeper()
    gone.kill()
    gone.wait()
    assert process_usage(gone.pid) == {"pid": gone.pid, "rss_kib": None, "fds": None, "processes": 0}
    assert snapshot({"me": os.getpid()})["me"]["pid"] == os.getpid()


def test_the_sampler_samples_each_process_until_the_with_ends_and_follows_a_restart(sleeper) -> None:
    current = {"sleeper": sleeper().pid}
    first = current["sleeper"]
    with ResourceSampler(lambda: dict(current), 0.05) as sampler:
        wait_until(lambda: len(sampler.samples) >= 3)
        current["sleeper"] = sleeper().pid  # restarted: the role's next samples name the new pid
        wait_until(lambda: sum(s["pid"] != first for s in sampler.samples) >= 3)
    taken = len(sampler.samples)
    time.sleep(0.2)
    assert not sampler._thread.is_alive() and len(sampler.samples) == taken  # stopped: nothing more comes
    assert {s["pid"] for s in sampler.samples} == {first, current["sleeper"]}
    assert all(s["role"] == "sleeper" and s["rss_kib"] > 0 and s["fds"] == len(os.listdir(f"/proc/{s['pid']}/fd"))
               for s in sampler.samples)
    at = [s["at"] for s in sampler.samples]
    assert at == sorted(at) and at[-1] - at[0] >= 0.05 * (taken - 2)  # paced by the interval, not a busy loop


def test_the_sampler_stops_on_ctrl_c_keeping_its_samples_and_goes_on_after_a_failed_sample() -> None:
    calls = iter(range(1000))

    def processes() -> dict[str, int]:
        if next(calls) == 1:
            raise RuntimeError("odd read")
        return {"me": os.getpid()}

    with pytest.raises(KeyboardInterrupt), ResourceSampler(processes, 0.01) as sampler:
        wait_until(lambda: len(sampler.samples) >= 3)
        raise KeyboardInterrupt
    assert not sampler._thread.is_alive() and len(sampler.samples) >= 3
    assert sampler.error == "RuntimeError: odd read"


def test_samples_are_kept_in_seconds_since_the_load_began() -> None:
    samples = [{"at": 1000.0, "role": "gateway", "pid": 7, "rss_kib": 10, "fds": 4, "processes": 1},
               {"at": 1105.25, "role": "gateway", "pid": 7, "rss_kib": 11, "fds": 5, "processes": 3}]
    assert since(samples, 1001.0) == [
        {"t": -1.0, "role": "gateway", "pid": 7, "rss_kib": 10, "fds": 4, "processes": 1},
        {"t": 104.25, "role": "gateway", "pid": 7, "rss_kib": 11, "fds": 5, "processes": 3}]
