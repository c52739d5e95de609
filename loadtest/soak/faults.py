"""The faults themselves, run by one thread at their scheduled seconds. Each returns what happened and when, in
wall-clock seconds, for the report to line requests up against."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import urllib3

from loadtest.soak.client import PNG, Record, send
from loadtest.soak.schedule import Fault, Schedule
from loadtest.soak.stack import EXPERIMENT, SoakStack

# (what, content type, body): each is refused by the gateway with a 400 before it reaches Triton.
MALFORMED = (
    ("bad-png", PNG["Content-Type"], b"\x89PNG\r\n\x1a\n not really a png"),
    ("short-tensor", "application/octet-stream", b"\0" * 10),
    ("bad-kserve-json", "application/json", b'{"inputs": [{"name": "images", "shape": [1, -3]}]}'),
)


def triton_kill(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    replica = int(fault.params.get("replica", 0)) % len(stack.tritons)
    killed, pid = stack.kill_triton(replica)
    back = stack.wait_triton_back(replica, pid)
    return {"replica": replica, "killed_at": killed, "back_at": back, "down_s": back - killed}


def gateway_kill(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    killed = stack.kill_gateway()
    back = stack.start_gateway()  # a process manager's restart (systemd Restart=always, a pod's restartPolicy)
    return {"killed_at": killed, "back_at": back, "down_s": back - killed}


def malformed_burst(stack: SoakStack, fault: Fault, records: list[Record]) -> dict:
    """Sent as fast as one connection allows, mixed into the paced traffic; kept apart from its counts."""
    count = int(fault.params.get("count", 60))
    pool = urllib3.PoolManager(maxsize=1)
    model = next(iter(json.loads(stack.good_experiments)[EXPERIMENT]["arms"]))
    url = f"{stack.url}/v1/models/{model}/predict"
    sent = [send(pool, url, body, {"Content-Type": ctype}, f"malformed:{what}")
            for i in range(count) for what, ctype, body in [MALFORMED[i % len(MALFORMED)]]]
    pool.clear()
    records.extend(sent)
    codes: dict[str, int] = {}
    for r in sent:
        codes[str(r.status)] = codes.get(str(r.status), 0) + 1
    return {"sent": count, "codes": codes, "all_400": codes == {"400": count}}


def bad_experiments_file(stack: SoakStack, fault: Fault, _: list[Record]) -> dict:
    """A careless operator's edit: the file overwritten in place with invalid JSON, then put right."""
    hold_s = float(fault.params.get("hold_s", 10))
    stack.state_file.write_text('{"soak": {"arms": ')  # truncated: not JSON
    written = time.time()
    seen = []
    while time.time() < written + hold_s:  # what the gateway says it runs while the file is bad
        time.sleep(1.0)
        seen.append(experiment_arms(stack))
    stack.state_file.write_text(stack.good_experiments)
    expected = json.loads(stack.good_experiments)[EXPERIMENT]["arms"]
    held = bool(seen) and all(s == expected for s in seen)
    return {"written_at": written, "restored_at": time.time(), "arms_seen": seen[-1] if seen else None,
            "last_good_held": held}


def experiment_arms(stack: SoakStack) -> dict | None:
    try:
        return httpx.get(f"{stack.url}/v1/experiments/{EXPERIMENT}", timeout=5).json().get("arms")
    except (httpx.HTTPError, ValueError):
        return None


ACTIONS: dict[str, Callable[[SoakStack, Fault, list[Record]], dict]] = {
    "triton_kill": triton_kill, "gateway_kill": gateway_kill, "malformed_burst": malformed_burst,
    "bad_experiments_file": bad_experiments_file,
}


class FaultRunner:
    """One thread: each fault at t0 + at_s, one after another (a fault still running delays the next)."""

    def __init__(self, stack: SoakStack, schedule: Schedule) -> None:
        self.stack, self.schedule = stack, schedule
        self.done: list[dict] = []
        self.side_records: list[Record] = []  # the malformed requests
        self._thread: threading.Thread | None = None

    def start(self, t0: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(t0,), name="soak-faults", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self, t0: float) -> None:
        for fault in self.schedule.faults:
            time.sleep(max(0.0, t0 + fault.at_s - time.time()))
            started = time.time()
            try:
                outcome = ACTIONS[fault.kind](self.stack, fault, self.side_records)
                error = ""
            except Exception as exc:  # the run goes on; the report shows the fault as failed
                outcome, error = {}, f"{type(exc).__name__}: {exc}"
            self.done.append({**fault.to_json(), "started": started, "ended": time.time(), "error": error,
                              **outcome})
