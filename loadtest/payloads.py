"""Request bodies encoded once, before the load starts: a load generator must spend its CPU on sending."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import service_pb2

from loadtest.gateway_overhead import kserve_request


@dataclass(frozen=True)
class ModelIO:
    name: str
    input: str = "images"
    output: str = "logits"


@dataclass(frozen=True)
class HttpPayload:
    body: bytes
    headers: dict[str, str]


def http_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 POST as sent on the wire (keep-alive is HTTP/1.1's default): head, then body."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def triton_http(model: ModelIO, images: np.ndarray, host: str) -> list[bytes]:
    """KServe v2 with the binary tensor extension, one image per request, each a ready-made wire request."""
    path = f"/v2/models/{model.name}/infer"
    return [http_request(host, path, *kserve_request(image, model.input, model.output)) for image in images]


def gateway_tensor(images: np.ndarray) -> list[HttpPayload]:
    """The gateway's raw uint8 tensor form, the cheapest for it to decode."""
    shape = "1," + ",".join(map(str, images.shape[1:]))
    headers = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": shape}
    return [HttpPayload(image.tobytes(), headers) for image in images]


def triton_grpc(model: ModelIO, images: np.ndarray) -> list[service_pb2.ModelInferRequest]:
    """Ready ModelInferRequest messages with raw_input_contents (what tritonclient builds on every call)."""
    requests = []
    for image in images:
        req = service_pb2.ModelInferRequest(model_name=model.name)
        tensor = req.inputs.add(name=model.input, datatype="UINT8")
        tensor.shape.extend([1, *image.shape])
        req.outputs.add(name=model.output)
        req.raw_input_contents.append(image.tobytes())
        requests.append(req)
    return requests
