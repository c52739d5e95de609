"""The gateway's uvicorn settings, shared by `invoke serve` and `python -m serving.gateway`."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn

from serving.gateway import server
from serving.gateway.settings import GatewaySettings


def test_idle_connections_outlive_the_clients_pauses(settings: GatewaySettings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's default 5 s keep-alive raced a client that paused ~5 s between requests on one connection
    ("server disconnected without sending a response" in the multi-host test); the gateway keeps idle
    connections longer than common proxies' 60 s idle timeouts."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    server.serve(settings, "127.0.0.1", 8080)
    (kwargs,) = calls
    assert kwargs["timeout_keep_alive"] > 60
    assert (kwargs["host"], kwargs["port"], kwargs["access_log"]) == ("127.0.0.1", 8080, False)
