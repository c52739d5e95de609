from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtest.soak.run import pick_arms, private_copy


def test_the_soak_serves_a_hard_linked_copy_the_publish_fault_cannot_write_through(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(b"weights")
    copy = private_copy(repo, tmp_path / "out" / "repo")
    assert os.path.samefile(copy / "m" / "1" / "model.onnx", repo / "m" / "1" / "model.onnx")
    (copy / "m" / "2").mkdir()
    assert not (repo / "m" / "2").exists()
    assert private_copy(repo, copy) == copy and not (copy / "m" / "2").exists()  # a fresh copy every run


def test_arms_are_the_models_given_or_the_first_two(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("loadtest.soak.run.load_manifest", lambda repo: {"a": 1, "b": 2, "c": 3})
    assert pick_arms(tmp_path, []) == {"a": 1.0, "b": 1.0}
    assert pick_arms(tmp_path, ["c"]) == {"c": 1.0}
    with pytest.raises(SystemExit, match="nosuch"):
        pick_arms(tmp_path, ["nosuch"])
    assert json.dumps(pick_arms(tmp_path, ["b", "c"]))


def test_sigterm_during_a_soak_is_handled_as_ctrl_c_and_the_handler_is_put_back() -> None:
    import signal

    from loadtest.soak.run import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        handler = signal.getsignal(signal.SIGTERM)
        # Called, not delivered: a real SIGTERM in the test process crashed it once torch's libraries were loaded by
        # other tests; the e2e test (tests/e2e/test_soak_e2e.py) sends a real one to a real soak.
        assert callable(handler) and handler is not before
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            handler(signal.SIGTERM, None)
    assert signal.getsignal(signal.SIGTERM) is before


def test_locust_s_statistics_are_checked_against_its_records() -> None:
    from loadtest.soak.client import Record
    from loadtest.soak.run import locust_side

    records = [Record("good", 0, 1, 200, "", 0, ""), Record("good", 0, 1, 0, "retries exhausted", -1, ""),
               Record("canary", 0, 1, 200, "", 0, ""), Record("malformed:x", 0, 1, 400, "HTTP 400", 0, "")]
    side = locust_side(records, {"requests": 2, "failures": 1})
    assert side["records_match_stats"] and (side["locust_answered"], side["canary_answered"]) == (1, 1)
    assert not locust_side(records, {"requests": 3, "failures": 1})["records_match_stats"]
    assert not locust_side(records, {"requests": None, "failures": None})["records_match_stats"]
    assert not locust_side(records, {"requests": 1, "failures": 1})["records_match_stats"], "a request missing"
    stopped = locust_side(records, {"requests": 1, "failures": 1}, in_flight=4)
    assert stopped["records_match_stats"] and stopped["recorded_after_totals"] == (1, 0), \
        "stopped by a signal: a request still ending when Locust wrote its totals"
    assert not locust_side(records, {"requests": 2, "failures": 2}, in_flight=4)["records_match_stats"], \
        "Locust never counts more failures than were recorded"


def test_every_request_s_line_names_its_fault_window_and_the_kill_it_was_in_flight_at(tmp_path: Path) -> None:
    import csv

    from loadtest.soak.client import Record
    from loadtest.soak.run import write_records

    faults = [{"kind": "gateway_kill", "started": 10.0, "ended": 12.0, "killed_at": 10.0}]
    records = [Record("good", 9.5, 11.0, 200, "", 1, "ProtocolError"), Record("good", 100.0, 100.1, 200, "", 0, "")]
    write_records(tmp_path / "requests.csv", records, faults, 30.0)
    rows = list(csv.DictReader((tmp_path / "requests.csv").read_text().splitlines()))
    assert [(r["fault_window"], r["in_flight_at_kill"]) for r in rows] == [
        ("#1 gateway_kill", "#1 gateway_kill"), ("none", "")]
