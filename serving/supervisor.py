"""Keep tritonserver running: restart it, with backoff, whenever it exits on its own."""

from __future__ import annotations

import logging
import threading

from serving.triton import TritonConfig, TritonServer

log = logging.getLogger("tritonzoo.supervisor")


class SupervisedTriton:
    def __init__(self, cfg: TritonConfig, check_every_s: float = 0.5, max_backoff_s: float = 10.0) -> None:
        self.server = TritonServer(cfg)
        self.check_every_s, self.max_backoff_s = check_every_s, max_backoff_s
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a restart and the final stop never interleave
        self._thread = threading.Thread(target=self._watch, name="triton-supervisor", daemon=True)

    def __enter__(self) -> SupervisedTriton:
        self.server.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            self.server.stop()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stop.wait(self.check_every_s):
            process = self.server.process
            if process is not None and process.poll() is None:
                continue
            log.warning("tritonserver exited (%s); restarting in %.0fs", process and process.returncode, backoff)
            if self._stop.wait(backoff):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self.server.stop()
                    self.server.start()
                    self.restarts += 1
                    backoff = 1.0
                    log.warning("tritonserver restarted (%d restarts so far)", self.restarts)
                except Exception as exc:  # keep supervising whatever went wrong this time
                    log.error("tritonserver restart failed: %s", exc)
                    backoff = min(backoff * 2, self.max_backoff_s)
