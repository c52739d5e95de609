"""KServe v2 inference requests checked before they reach Triton.

Triton answers 500 to several malformed requests (a body that is not JSON, a JSON array, no `inputs`, data that
does not fill its shape, a negative dimension, strings where numbers belong): errors of the client, which the
gateway answers with a 400 naming the problem. A request that passes is forwarded byte for byte.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from serving.gateway.errors import BadRequest

NUMERIC = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16"}
DATATYPES = NUMERIC | {"BOOL", "BYTES"}
HEADER_LENGTH = "inference-header-content-length"  # the binary tensor extension: a JSON header, then raw tensors


def check_infer_request(body: bytes, headers: Mapping[str, str]) -> None:
    """Raise BadRequest, naming the problem, for a request Triton would refuse with a server error."""
    header = _json_part(body, headers)
    try:
        request = json.loads(header)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the inference request is not JSON ({exc})") from None
    if not isinstance(request, dict):
        raise BadRequest(f"the inference request must be a JSON object, not {type(request).__name__}")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("the inference request needs `inputs`: a non-empty list of tensors")
    for i, tensor in enumerate(inputs):
        _check_tensor(tensor, f"inputs[{i}]")


def _json_part(body: bytes, headers: Mapping[str, str]) -> bytes:
    declared = headers.get(HEADER_LENGTH)
    if declared is None:
        return body
    if not declared.isdigit() or int(declared) > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {declared!r} is not a length within the body")
    return body[: int(declared)]


def _check_tensor(tensor: Any, where: str) -> None:
    if not isinstance(tensor, dict):
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise BadRequest(f"{where} ({name}): shape must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise BadRequest(f"{where} ({name}): shape {shape} has a negative dimension")
    if datatype not in DATATYPES:
        raise BadRequest(f"{where} ({name}): datatype {datatype!r} is not one of {sorted(DATATYPES)}")
    if "data" not in tensor:
        if isinstance(tensor.get("parameters", {}).get("binary_data_size"), int):
            return  # its values follow the JSON header as raw bytes, which Triton checks against the shape
        raise BadRequest(f"{where} ({name}): no data (and no binary_data_size parameter)")
    _check_data(tensor["data"], shape, datatype, f"{where} ({name})")


def _check_data(data: Any, shape: list[int], datatype: str, where: str) -> None:
    values = list(_flatten(data))
    if len(values) != math.prod(shape):
        raise BadRequest(f"{where}: {len(values)} values do not fill shape {shape} ({math.prod(shape)} values)")
    if datatype in NUMERIC:
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, int | float)), None)
        if bad is not None:
            raise BadRequest(f"{where}: {datatype} data holds {bad!r}, not a number")
    elif datatype == "BOOL" and not all(isinstance(v, bool) for v in values):
        raise BadRequest(f"{where}: BOOL data must be true or false")
    elif datatype == "BYTES" and not all(isinstance(v, str) for v in values):
        raise BadRequest(f"{where}: BYTES data must be strings")


def _flatten(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data
