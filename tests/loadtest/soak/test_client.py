from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from loadtest.soak.client import Record, RecordWriter, client_retry, read_records, record_of, retry_policy


class FlakyGateway(BaseHTTPRequestHandler):
    """503 with Retry-After 0 on every first POST of a key, then 200 with the arm: a gateway restarting."""

    seen: set[str] = set()

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers["X-Assignment-Key"]
        first = key not in self.seen
        self.seen.add(key)
        self.send_response(503 if first else 200)
        self.send_header("Retry-After", "0")
        self.send_header("X-Experiment-Arm", "arm-a")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_policy_retries_a_post_on_503_and_the_record_says_so(gateway: str) -> None:
    session = requests.Session()  # what Locust's HttpSession is
    session.mount("http://", HTTPAdapter(max_retries=client_retry()))
    response = session.post(f"{gateway}/v1/experiments/soak/predict", data=b"png",
                            headers={"X-Assignment-Key": "k1"}, timeout=(2, 5))
    record = record_of("good", 100.0, 250.0, response, None, "k1")
    assert (record.status, record.retries, record.history, record.arm, record.error) == (200, 1, "503", "arm-a", "")
    assert record.end == pytest.approx(100.25)


def test_a_request_that_got_no_answer_records_why_the_retries_gave_up() -> None:
    reason = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    failed = requests.ConnectionError(MaxRetryError(None, "/v1", reason))  # type: ignore[arg-type]
    record = record_of("good", 1.0, 10.0, None, failed, "k")
    assert (record.status, record.retries, record.error) == (0, -1, "retries exhausted: NewConnectionError")
    unretried = record_of("good", 1.0, 10.0, None, requests.ReadTimeout("slow"), "k")
    assert (unretried.retries, unretried.error) == (0, "ReadTimeout")


def test_records_are_written_through_per_process_and_a_cut_last_line_is_skipped(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "records.jsonl"))
    record = Record("good", 1.0, 2.0, 200, "", 0, "", "k", "a")
    writer.write(record)
    assert read_records(tmp_path / "records.jsonl") == [record]  # before close: line-buffered
    writer.close()
    (tmp_path / "records.jsonl.999").write_text('{"kind": "good", "start": 1')  # a process killed mid-line
    assert read_records(tmp_path / "records.jsonl") == [record]


def test_the_policy_in_words_is_read_from_the_policy() -> None:
    text = retry_policy()
    retry = client_retry()
    assert f"total={retry.total}" in text and "(502, 503, 504)" in text and "POST is retried" in text
