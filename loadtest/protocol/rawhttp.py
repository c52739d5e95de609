"""The least HTTP/1.1 a closed-loop load generator needs: send ready-made request bytes on a keep-alive socket, read
one response by its Content-Length, check its status. Under Locust, `socket` is gevent's (Locust patches it)."""

from __future__ import annotations

import socket

RECV_BYTES = 65536


class HttpStatusError(Exception):
    """The server answered, but not with 200."""


def parse_head(head: bytes) -> tuple[int, int]:
    """Status code and Content-Length of a response head (Triton always sends Content-Length)."""
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("response without Content-Length")
    end = lower.find(b"\r\n", at + 2)
    return status, int(lower[at + 17:end if end >= 0 else None])


class RawConnection:
    """One keep-alive connection: send the request bytes, read one response. Not thread-safe (one per user)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)  # gevent's socket under Locust
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, request: bytes | bytearray) -> int:
        """Send, then return the response body's length; a non-200 status raises after the body is consumed."""
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self.buffer += self._recv()
        status, length = parse_head(self.buffer[:end])
        need = end + 4 + length
        while len(self.buffer) < need:
            self.buffer += self._recv()
        body, self.buffer = self.buffer[end + 4:need], self.buffer[need:]
        if status != 200:
            raise HttpStatusError(f"HTTP {status}: {bytes(body[:120])!r}")
        return length

    def _recv(self) -> bytes:
        chunk = self.sock.recv(RECV_BYTES)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()
