"""`python -m serving.gateway`: the gateway alone, in front of a Triton that runs elsewhere (a Kubernetes pod, a
replica on another host). `invoke serve` runs it with a supervised Triton of its own instead."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from serving.gateway.settings import GatewaySettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving.gateway", description=__doc__)
    p.add_argument("--repo", type=Path, required=True, help="the repository's manifest and label files")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback unless told otherwise)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--triton-grpc", default="127.0.0.1:8001",
                   help="Triton's gRPC address (model control, readiness); comma-separated for several replicas")
    p.add_argument("--triton-http", default="127.0.0.1:8000",
                   help="Triton's HTTP address (inference); comma-separated, in the order of --triton-grpc: each "
                        "request goes to the healthy replica with the fewest requests outstanding")
    p.add_argument("--experiments", type=Path, default=Path("runs/gateway/experiments.json"),
                   help="the experiments file; every replica given the same file runs the same experiments")
    p.add_argument("--read-only-experiments", action="store_true",
                   help="the file is only read here (a ConfigMap): the admin API refuses to change experiments")
    p.add_argument("--watch-interval-s", type=float, default=1.0, help="how often the experiments file is read again")
    p.add_argument("--prometheus-url", default="",
                   help="Prometheus that scrapes every replica: canary rollbacks read their error rate there")
    p.add_argument("--prometheus-settle-s", type=float, default=5.0,
                   help="seconds after a canary step's end before asking Prometheus (at least two scrapes)")
    return p


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(repository=args.repo, triton_grpc=args.triton_grpc, triton_http=args.triton_http,
                           state_file=args.experiments, read_only_experiments=args.read_only_experiments,
                           watch_interval_s=args.watch_interval_s, prometheus_url=args.prometheus_url,
                           prometheus_settle_s=args.prometheus_settle_s)


def main(argv: list[str] | None = None) -> None:
    from serving.gateway.server import serve

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("tritonzoo").info("gateway on http://%s:%d, Triton %s", args.host, args.port, args.triton_http)
    serve(settings_from(args), args.host, args.port)

if __name__ == "__main__":
    main()
