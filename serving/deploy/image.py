"""The project's image for the gateway and Locust pods (Triton runs NVIDIA's container): Python with the gateway's
and the load generator's dependencies and the serving and loadtest packages; no Triton, no runtimes, no torch."""

from __future__ import annotations

DOCKERFILE = """\
# The image the gateway and Locust pods run (Triton runs NVIDIA's container). Build it from the repository root:
#   docker build -f {path} -t {image} .
FROM python:3.11-slim
WORKDIR /opt/tritonzoo
COPY pyproject.toml README.md ./
COPY serving/ serving/
COPY loadtest/ loadtest/
COPY build/ build/
# The gateway's and the load generator's dependencies only: the pipeline (torch) and Triton are not installed.
RUN pip install --no-cache-dir ".[gateway,loadtest]"
USER 65532
"""


def dockerfile(path: str, image: str) -> str:
    return DOCKERFILE.format(path=path, image=image)
