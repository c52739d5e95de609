"""Request bodies encoded once, before the load starts: a load generator must spend its CPU on sending."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import service_pb2

from serving.pixels import from_chw


def kserve_request(image: np.ndarray, input_name: str, output_name: str) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 binary-tensor request: JSON header, then the raw uint8 pixels."""
    batch = image[None] if image.ndim == 3 else image
    header = json.dumps({
        "inputs": [{"name": input_name, "shape": list(batch.shape), "datatype": "UINT8",
                    "parameters": {"binary_data_size": batch.nbytes}}],
        "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
    }).encode()
    return header + batch.tobytes(), {"Content-Type": "application/octet-stream",
                                      "Inference-Header-Content-Length": str(len(header))}


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


def gateway_image(images: np.ndarray) -> list[HttpPayload]:
    """PNG bodies (lossless): what a client that does not know the model's input sends; the gateway converts and
    resizes each image for whichever model answers it."""
    payloads = []
    for image in images:
        buf = io.BytesIO()
        from_chw(image).save(buf, format="PNG")
        payloads.append(HttpPayload(buf.getvalue(), {"Content-Type": "image/png"}))
    return payloads


def experiment_payloads(images: Mapping[str, np.ndarray]) -> list[HttpPayload]:
    """Bodies for an A/B experiment, where the gateway picks the arm: raw tensors when every arm takes the same dims
    (the cheapest form for the gateway), else PNG images of the largest input any arm takes, so that no arm is sent
    pixels scaled up from a smaller model's; the gateway resizes them for each arm."""
    shapes = {tuple(a.shape[1:]) for a in images.values()}
    largest = max(images.values(), key=lambda a: int(np.prod(a.shape[1:])))  # the first of equals: dicts keep order
    return gateway_tensor(largest) if len(shapes) == 1 else gateway_image(largest)
