"""The gateway's HTTP client against small real asyncio servers on loopback."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from serving.gateway.errors import BadShape, Unavailable
from serving.gateway.http_pool import HttpPool, HttpResponse, UpstreamError
from serving.gateway.triton_client import decode_output, http_error


async def serve(handler) -> tuple[asyncio.base_events.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


def test_keep_alive_connections_are_reused_and_bodies_arrive_whole() -> None:
    async def main() -> None:
        connections = []

        async def echo(reader, writer):
            connections.append(writer)
            while True:
                try:
                    body = await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Echo: yes\r\n\r\n%s" % (len(body), body))

        server, port = await serve(echo)
        pool = HttpPool("127.0.0.1", port)
        for i in range(5):
            r = await pool.request("POST", "/x", b"payload-%d" % i)
            assert r.status == 200 and r.body == b"payload-%d" % i and r.headers["x-echo"] == "yes"
        assert len(connections) == 1
        await pool.close()
        server.close()

    asyncio.run(main())


def test_chunked_responses_are_decoded() -> None:
    async def main() -> None:
        async def chunked(reader, writer):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

        server, port = await serve(chunked)
        assert (await HttpPool("127.0.0.1", port).request("GET", "/")).body == b"hello world"
        server.close()

    asyncio.run(main())


def test_a_connection_closed_by_a_restarted_server_is_retried_fresh() -> None:
    async def main() -> None:
        async def one_shot(reader, writer):  # answers once, then drops the kept-alive connection
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server, port = await serve(one_shot)
        pool = HttpPool("127.0.0.1", port)
        assert (await pool.request("GET", "/")).body == b"ok"
        await asyncio.sleep(0.05)
        assert (await pool.request("GET", "/")).body == b"ok"
        server.close()

    asyncio.run(main())


def test_unreachable_or_silent_upstream_fails_fast() -> None:
    async def main() -> None:
        server, port = await serve(lambda r, w: None)
        port_closed = port
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamError, match="ConnectionRefusedError"):
            await HttpPool("127.0.0.1", port_closed).request("GET", "/")

        async def silent(reader, writer):
            await asyncio.sleep(10)

        server, port = await serve(silent)
        with pytest.raises(UpstreamError, match="TimeoutError"):
            await HttpPool("127.0.0.1", port, timeout_s=0.2).request("GET", "/")
        server.close()

    asyncio.run(main())


def test_kserve_binary_outputs_are_decoded_by_name() -> None:
    logits = np.arange(20, dtype=np.float32).reshape(2, 10)
    header = json.dumps({"outputs": [
        {"name": "other", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
        {"name": "logits", "datatype": "FP32", "shape": [2, 10], "parameters": {"binary_data_size": 80}},
    ]}).encode()
    body = header + np.array([7, 8], np.int64).tobytes() + logits.tobytes()
    response = HttpResponse(200, {"inference-header-content-length": str(len(header))}, body)
    assert np.array_equal(decode_output(response, "logits"), logits)
    with pytest.raises(Unavailable, match="no output 'probs'"):
        decode_output(response, "probs")


def test_triton_errors_map_to_client_or_retry_statuses() -> None:
    bad = HttpResponse(400, {}, json.dumps({"error": "unexpected shape for input 'images'"}).encode())
    assert isinstance(http_error(bad, 2), BadShape)
    gone = HttpResponse(400, {}, json.dumps({"error": "Request for unknown model: 'm' is not found"}).encode())
    err = http_error(gone, 3)
    assert isinstance(err, Unavailable) and err.headers["Retry-After"] == "3"
