from __future__ import annotations

from pathlib import Path

from loadtest.soak.faults import MALFORMED, next_version


def test_next_version_follows_the_highest_numbered_folder(tmp_path: Path) -> None:
    for name in ("1", "3", "config.d", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert next_version(tmp_path) == 4


def test_every_malformed_kind_is_a_different_mistake() -> None:
    assert len({what for what, _, _ in MALFORMED}) == len({ctype for _, ctype, _ in MALFORMED}) == len(MALFORMED)


def test_stopped_faults_start_no_more_and_say_which_were_cut_short_or_not_run(monkeypatch) -> None:
    import threading
    import time

    from loadtest.soak import faults as module
    from loadtest.soak.faults import FaultRunner
    from loadtest.soak.schedule import Fault, Schedule

    entered, release = threading.Event(), threading.Event()

    def slow(stack, fault, records) -> dict:
        entered.set()
        release.wait()
        return {}

    monkeypatch.setitem(module.ACTIONS, "gateway_kill", slow)
    schedule = Schedule(3600, 1, 1, 1000, (Fault(0, "gateway_kill"), Fault(3000, "malformed_burst")))
    # The fake fault needs no stack.
    runner = FaultRunner(None, schedule)  # type: ignore[arg-type]
    t0 = time.time()
    runner.start(lambda: t0)  # the first fault is due at once, the second in 50 minutes
    assert entered.wait(60)
    runner.stop(timeout_s=0)
    assert runner.not_run() == [{"at_s": 0, "kind": "gateway_kill", "cut_short": True},
                                {"at_s": 3000, "kind": "malformed_burst", "cut_short": False}]
    release.set()
    runner.join(60)
    assert [f["kind"] for f in runner.done] == ["gateway_kill"]  # the stop kept the second from starting
