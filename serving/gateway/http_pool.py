"""A lean HTTP/1.1 client over pooled keep-alive connections, for the gateway's hop to Triton.

Measured on the project's 2-core machine (`invoke bench-gateway`), one inference round trip costs the
caller about 1.0 ms of CPU through tritonclient's gRPC aio client and 1.9 ms through httpx, but 0.35 ms
through plain asyncio streams: on a 2-core machine that CPU comes straight out of Triton's share.
Triton's HTTP endpoint answers with Content-Length, so this client needs no more of HTTP/1.1 than
requests, Content-Length and chunked bodies, and keep-alive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024
HEAD_READ = "_tz_head_read"  # marks an IncompleteReadError raised after the response head was read


class UpstreamError(ConnectionError):
    """The upstream could not be reached, or broke off or timed out mid-exchange. `before_response`: it failed
    before any of a response came back (refused, reset, closed), so the request may go to another upstream."""

    def __init__(self, message: str, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpPool:
    def __init__(self, host: str, port: int, timeout_s: float = 10.0, max_idle: int = 64) -> None:
        self.host, self.port, self.timeout_s, self.max_idle = host, port, timeout_s, max_idle
        self._idle: list[Connection] = []

    @classmethod
    def for_url(cls, url: str, **kwargs) -> HttpPool:
        host, _, port = url.removeprefix("http://").rpartition(":")
        return cls(host, int(port), **kwargs)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> HttpResponse:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        reused = bool(self._idle)
        try:
            return await self._timed_exchange(payload)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if not reused:
                raise self._error(exc) from exc
        except (OSError, TimeoutError, ValueError) as exc:
            raise self._error(exc) from exc
        # A kept-alive connection the server had already closed (say, it restarted): retry once, fresh.
        self.close_idle()
        try:
            return await self._timed_exchange(payload)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> UpstreamError:
        # Refused, reset or closed with no response head read: the server answered nothing. A timeout may mean
        # it is still working on the request, and a malformed response means it answered.
        before = isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)) or (
            isinstance(exc, OSError) and not isinstance(exc, TimeoutError))
        if isinstance(exc, asyncio.IncompleteReadError) and getattr(exc, HEAD_READ, False):
            before = False
        return UpstreamError(f"{self.host}:{self.port}: {exc.__class__.__name__}: {exc}", before)

    async def _timed_exchange(self, payload: bytes) -> HttpResponse:
        # asyncio.timeout, unlike wait_for, runs the exchange in this task: no extra task per request.
        async with asyncio.timeout(self.timeout_s):
            return await self._exchange(payload)

    async def _exchange(self, payload: bytes) -> HttpResponse:
        reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(payload)
            response, keep_alive = await _read_response(reader)
        except BaseException:
            writer.close()
            raise
        if keep_alive and len(self._idle) < self.max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return response

    def close_idle(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()

    async def close(self) -> None:
        self.close_idle()


async def _read_response(reader: asyncio.StreamReader) -> tuple[HttpResponse, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError("response headers too large")
    try:
        return await _read_rest(reader, head)
    except asyncio.IncompleteReadError as exc:
        setattr(exc, HEAD_READ, True)  # the body broke off: the server had answered
        raise


async def _read_rest(reader: asyncio.StreamReader, head: bytes) -> tuple[HttpResponse, bool]:
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, status, _ = (status_line.split(" ", 2) + [""])[:3]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    return HttpResponse(int(status), headers, body), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # no trailers from Triton: just the closing blank line
    return b"".join(chunks)
