"""Child processes (Triton, Prometheus, Locust): a process group of their own, stopped with their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child must not load libraries
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child: if the parent is killed outright, the kernel stops the child too."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` in a session of its own (so Ctrl-C in the terminal reaches only us, and we stop it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, preexec_fn=_die_with_parent)


def stop_group(proc: subprocess.Popen | None, sig: signal.Signals = signal.SIGTERM, grace: float = 15.0) -> None:
    """Signal the child's whole group, wait `grace` seconds, then kill whatever is left of it."""
    if proc is None:
        return
    if proc.poll() is None:
        _signal_group(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers: forked Locust workers, for one
    proc.wait()


def interrupt(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Ctrl-C for the child's main process only (a Locust master then stops its workers itself), then the group.

    SIGINT, not SIGTERM: headless Locust with a load shape installs its SIGTERM handler only after the shape ends,
    so SIGTERM would kill it without its final report; SIGINT takes the graceful path.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    stop_group(proc)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
