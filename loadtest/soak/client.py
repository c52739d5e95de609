"""The soak's client side: the retry policy its Locust users mount, and one record per request.

The client modelled is a Python service calling the gateway with `requests` over urllib3, with the
`HTTPAdapter(max_retries=Retry(...))` that urllib3's and requests' documentation recommend for an idempotent call:
retry on refused connections and resets, and on 502/503/504, honouring the gateway's Retry-After, with exponential
backoff. POST is retried too (`allowed_methods=None`): an inference has no side effect, so sending it twice costs
only the second inference. The load is Locust's (`SoakUser` in loadtest/locust/locustfile.py, whose `HttpSession`
is a `requests.Session`); each of its requests is written as a `Record` from Locust's `events.request` hook
(`RecordWriter`), because the report needs each request's own fate, which Locust's aggregated counts do not keep.
The faults' own traffic (the malformed burst, the canaries' experiments) goes through `send`, with the same policy.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import urllib3
from urllib3.util.retry import Retry

PNG = {"Content-Type": "image/png"}


def client_retry() -> Retry:
    """Up to 8 tries over about 15 s: longer than a gateway restart (a few seconds), shorter than a client's
    patience. The first retry is immediate, then 0.4, 0.8, 1.6, 3.2 s (capped at 5 s), or the Retry-After."""
    return Retry(total=8, connect=8, read=3, status=4, backoff_factor=0.2, backoff_max=5.0,
                 status_forcelist=(502, 503, 504), allowed_methods=None, respect_retry_after_header=True,
                 raise_on_status=False)


def retry_policy() -> str:
    """The client library and its policy in words, for the report: read from the policy itself, so they agree."""
    import requests

    r = client_retry()
    return (f"requests {requests.__version__} (urllib3 {urllib3.__version__}): Locust's HttpSession (a requests."
            f"Session) with an HTTPAdapter(max_retries=Retry(total={r.total}, connect={r.connect}, read={r.read}, "
            f"status={r.status}, backoff_factor={r.backoff_factor}, backoff_max={r.backoff_max}, status_forcelist="
            f"{tuple(sorted(r.status_forcelist or ()))}, allowed_methods=None, respect_retry_after_header=True)). "
            "It retries refused connections and resets (a gateway being restarted) and 502/503/504 answers (a "
            "replica or model unavailable), waiting the answer's Retry-After or backing off exponentially "
            f"(0, {2 * r.backoff_factor:g}, {4 * r.backoff_factor:g}, ... s, at most {r.backoff_max:g} s); other "
            "answers, 400s included, are not retried. POST is retried (allowed_methods=None) because an inference "
            "has no side effect: a request sent again costs a second inference, never a second change. Connect "
            "timeout 2 s, read timeout 30 s.")


@dataclass
class Record:
    kind: str            # "good" (Locust's), "canary" (a canary fault's own traffic), or "malformed:<what>"
    start: float         # wall clock (time.time()), so that it lines up with faults and Prometheus
    end: float
    status: int          # the last answer's HTTP status; 0 when none came (retries exhausted on errors)
    error: str           # why it failed: the last error, or "" when answered
    retries: int         # retries urllib3 made (0: answered or refused at the first try; -1: all, then gave up)
    history: str         # what each retry was for, e.g. "503;ProtocolError"
    key: str = ""        # the A/B assignment key sent
    arm: str = ""        # the arm the gateway chose (X-Experiment-Arm)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> Record:
        return cls(**record)


def retry_history(raw: Any) -> tuple[int, str]:
    """How many retries urllib3 made for a response (`raw`: requests' `response.raw`), and what each was for."""
    history = getattr(getattr(raw, "retries", None), "history", None) or ()
    return len(history), ";".join(str(h.status) if h.status else type(h.error).__name__ for h in history)


def gave_up(exception: BaseException) -> str:
    """Why a request that got no answer failed: urllib3's MaxRetryError (wrapped by requests) names the last error."""
    reason = getattr(exception.args[0], "reason", None) if exception.args else None
    if reason is not None:
        return f"retries exhausted: {type(reason).__name__}"
    return type(exception).__name__


def record_of(kind: str, start: float, response_time_ms: float, response: Any, exception: BaseException | None,
              key: str) -> Record:
    """A Locust request (what `events.request` passes) as a Record."""
    status = int(getattr(response, "status_code", 0) or 0)
    retries, history = retry_history(getattr(response, "raw", None))
    headers = getattr(response, "headers", None) or {}
    if status == 0 and exception is not None:  # no answer: requests raised, Locust caught it
        error = gave_up(exception)
        retries = -1 if error.startswith("retries exhausted") else 0
    else:
        error = "" if status == 200 else f"HTTP {status}"
    return Record(kind, start, start + response_time_ms / 1000, status, error, retries, history, key,
                  headers.get("X-Experiment-Arm", ""))


class RecordWriter:
    """Records as JSON lines, one file per process (`<prefix>.<pid>`), each line written through at once: a soak
    cut short, or a Locust killed, still leaves every request it finished on disk."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(f"{prefix}.{os.getpid()}")
        self._file: IO[str] | None = None

    def write(self, record: Record) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)  # noqa: SIM115  (open for the process's life)
        self._file.write(json.dumps(record.to_json()) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_records(prefix: Path) -> list[Record]:
    """Every record the Locust processes wrote under `prefix`; a last line cut by a kill is skipped."""
    records = []
    for path in sorted(prefix.parent.glob(f"{prefix.name}.*")):
        for line in path.read_text().splitlines():
            try:
                records.append(Record.from_json(json.loads(line)))
            except (ValueError, TypeError):
                continue
    return records


def sample_png(size: int = 32, seed: int = 0) -> bytes:
    """One image the gateway resizes to each arm's input: the same body suits models of any input size."""
    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def send(pool: urllib3.PoolManager, url: str, body: bytes, headers: dict[str, str], kind: str,
         key: str = "", timeout_s: float = 30.0) -> Record:
    start = time.time()
    try:
        r = pool.request("POST", url, body=body, headers=headers, retries=client_retry(),
                         timeout=urllib3.Timeout(connect=2.0, read=timeout_s))
    except urllib3.exceptions.MaxRetryError as exc:
        return Record(kind, start, time.time(), 0, f"retries exhausted: {type(exc.reason).__name__}", -1, "", key)
    except urllib3.exceptions.HTTPError as exc:  # an error the policy does not retry
        return Record(kind, start, time.time(), 0, type(exc).__name__, 0, "", key)
    history = r.retries.history if r.retries is not None else ()
    causes = ";".join(str(h.status) if h.status else type(h.error).__name__ for h in history)
    error = "" if r.status == 200 else f"HTTP {r.status}"
    return Record(kind, start, time.time(), r.status, error, len(history), causes, key,
                  r.headers.get("X-Experiment-Arm", ""))
