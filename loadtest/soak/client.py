"""The soak's clients: paced requests through the gateway with urllib3's own retry policy, every request recorded.

The client modelled is a Python service calling the gateway with urllib3 (what `requests` uses underneath) and
a `Retry` like the one its documentation recommends for an idempotent call: retry on refused connections and
resets, and on 502/503/504, honouring the gateway's Retry-After, with exponential backoff. An inference is
idempotent, so POST is retried too (`allowed_methods=None`). Not Locust: the soak needs each request's own fate
(answered first time, answered after retries, or lost, and why), which Locust's aggregated counts do not keep.
"""

from __future__ import annotations

import io
import random
import threading
import time
from dataclasses import asdict, dataclass

import urllib3
from urllib3.util.retry import Retry

PNG = {"Content-Type": "image/png"}


def client_retry() -> Retry:
    """Up to 8 tries over about 15 s: longer than a gateway restart (a few seconds), shorter than a client's
    patience. The first retry is immediate, then 0.4, 0.8, 1.6, 3.2 s (capped at 5 s), or the Retry-After."""
    return Retry(total=8, connect=8, read=3, status=4, backoff_factor=0.2, backoff_max=5.0,
                 status_forcelist=(502, 503, 504), allowed_methods=None, respect_retry_after_header=True,
                 raise_on_status=False)


@dataclass
class Record:
    kind: str            # "good", or "malformed:<what>"
    start: float         # wall clock (time.time()), so that it lines up with faults and Prometheus
    end: float
    status: int          # the last answer's HTTP status; 0 when none came (retries exhausted on errors)
    error: str           # why it failed: the last error, or "" when answered
    retries: int         # retries urllib3 made (0: answered or refused at the first try)
    history: str         # what each retry was for, e.g. "503;ProtocolError"
    key: str = ""        # the A/B assignment key sent
    arm: str = ""        # the arm the gateway chose (X-Experiment-Arm)

    def to_json(self) -> dict:
        return asdict(self)


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


class Clients:
    """`users` threads sending `rate` requests per second in all, each to an experiment with a sticky key."""

    def __init__(self, url: str, experiment: str, rate: float, users: int, keys: int = 64) -> None:
        self.url = f"{url}/v1/experiments/{experiment}/predict"
        self.rate, self.users, self.keys = rate, users, keys
        self.body = sample_png()
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, t0: float, duration_s: float) -> None:
        self._threads = [threading.Thread(target=self._user, args=(k, t0, duration_s), name=f"soak-user-{k}",
                                          daemon=True) for k in range(self.users)]
        for t in self._threads:
            t.start()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _user(self, k: int, t0: float, duration_s: float) -> None:
        # Open-loop pacing per user: request j of user k is due at t0 + (k + j * users) / rate. A user that falls
        # behind sends at once, so the offered rate holds while the stack is slow (up to `users` in flight).
        pool = urllib3.PoolManager(maxsize=1)
        j = 0
        while (due := t0 + (k + j * self.users) / self.rate) < t0 + duration_s:
            time.sleep(max(0.0, due - time.time()))
            n = k + j * self.users
            key = f"user-{n % self.keys}"
            record = send(pool, self.url, self.body, {**PNG, "X-Assignment-Key": key}, "good", key)
            with self._lock:
                self.records.append(record)
            j += 1
        pool.clear()
