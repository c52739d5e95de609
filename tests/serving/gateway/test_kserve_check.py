from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from serving.gateway.errors import BadRequest
from serving.gateway.kserve_check import check_infer_request

GOOD = {"inputs": [{"name": "images", "shape": [1, 3, 2, 2], "datatype": "UINT8", "data": list(range(12))}]}


def body(value) -> bytes:
    return json.dumps(value).encode()


def tensor(**fields) -> dict:
    return {"inputs": [{**GOOD["inputs"][0], **fields}]}


def test_a_well_formed_request_passes() -> None:
    check_infer_request(body(GOOD), {})
    nested = tensor(data=[[[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]])
    check_infer_request(body(nested), {})
    header = body(tensor(data=None) | {"inputs": [{"name": "images", "shape": [1, 3, 2, 2], "datatype": "UINT8",
                                                   "parameters": {"binary_data_size": 12}}]})
    check_infer_request(header + bytes(12), {"inference-header-content-length": str(len(header))})


@pytest.mark.parametrize("raw, words", [
    (b"not json", "not JSON"),
    (body([1, 2]), "JSON object, not list"),
    (body({"outputs": []}), "needs `inputs`"),
    (body({"inputs": []}), "needs `inputs`"),
    (body({"inputs": [3]}), "inputs[0] must be an object"),
    (body(tensor(name="")), "inputs[0].name"),
    (body(tensor(shape=[1, -3, 2, 2])), "negative dimension"),
    (body(tensor(shape="1,3,2,2")), "shape must be a list of integers"),
    (body(tensor(datatype="FLOAT")), "datatype 'FLOAT'"),
    (body(tensor(data=list(range(11)))), "11 values do not fill shape [1, 3, 2, 2] (12 values)"),
    (body(tensor(data=["a"] * 12)), "UINT8 data holds 'a', not a number"),
    (body(tensor(data=[True] * 12)), "not a number"),
    (body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}), "no data"),
])
def test_malformed_requests_are_named(raw: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_infer_request(raw, {})
    assert words in info.value.message


def test_a_binary_header_length_must_lie_within_the_body() -> None:
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        check_infer_request(body(GOOD), {"inference-header-content-length": "99999"})


def test_the_gateway_answers_400_without_asking_triton(client: TestClient) -> None:
    for raw in (b"not json", body([1]), body(tensor(shape=[1, -3, 2, 2]))):
        r = client.post("/v2/models/m_a/infer", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["reason"] == "bad_request", r.text
    assert client.get("/healthz").status_code in (200, 503)
