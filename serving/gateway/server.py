"""How the gateway is served: the one set of uvicorn settings that `invoke serve` and `python -m serving.gateway`
share."""

from __future__ import annotations

from serving.gateway.settings import GatewaySettings

# Idle keep-alive connections are closed by the server only after this long. uvicorn's default, 5 s, races
# clients and load balancers that reuse a connection after a few seconds' pause: a request sent as the
# server closes gets "server disconnected" instead of a reply. Longer than the common proxies' idle
# timeouts (AWS ALB 60 s, nginx upstream keepalive 60 s), so the proxy side always closes first.
KEEP_ALIVE_S = 75


def serve(settings: GatewaySettings, host: str, port: int) -> None:
    """Serve the gateway until the process is stopped (uvicorn handles SIGINT and SIGTERM)."""
    import uvicorn

    from serving.gateway.app import create_app

    # httptools and uvloop; no access log; proxy_headers off: the gateway never reads client addresses, so
    # that middleware would be pure cost.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", loop="uvloop", http="httptools",
                access_log=False, proxy_headers=False, timeout_keep_alive=KEEP_ALIVE_S)
