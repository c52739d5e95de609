"""`invoke serve`: a supervised Triton (explicit model control) with the gateway in front of it."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import uvicorn

from serving.gateway.app import create_app
from serving.gateway.settings import GatewaySettings
from serving.supervisor import SupervisedTriton
from serving.triton import TritonConfig


def run_stack(repo: Path, host: str, port: int, triton: TritonConfig,
              external_triton: tuple[str, str] | None = None, state_file: Path | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; Triton is stopped with the gateway.

    `external_triton` (grpc_url, http_url) skips starting one. Triton itself binds to loopback, so its
    model-control API is reachable only through the gateway's admin endpoints.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    grpc_url, http_url = external_triton or (triton.grpc_url, triton.http_url)
    settings = GatewaySettings(repository=repo, triton_grpc=grpc_url, triton_http=http_url,
                               **({"state_file": state_file} if state_file else {}))
    with nullcontext() if external_triton else SupervisedTriton(triton):
        logging.getLogger("tritonzoo").info("gateway on http://%s:%d, Triton gRPC %s", host, port, grpc_url)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", loop="uvloop",
                    http="httptools", access_log=False)
