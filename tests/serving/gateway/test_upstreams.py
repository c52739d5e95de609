"""Several Triton replicas behind one gateway: least outstanding requests, health checks, one retry elsewhere when a
connection fails before any response. Against small asyncio servers on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from serving.gateway.errors import Unavailable
from serving.gateway.triton_client import TritonInference


class Replica:
    """An HTTP server answering 200 after `delay` seconds; `ready` drives /v2/health/ready; `mode` 'drop' closes the
    connection without answering, 'hang' never answers."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.ready, self.mode = delay, True, "ok"
        self.served = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            await reader.readexactly(length)
            if head.startswith(b"GET /v2/health/ready"):
                status = b"200 OK" if self.ready else b"503 Service Unavailable"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
                continue
            if self.mode == "drop":
                writer.close()
                return
            if self.mode == "hang":
                await asyncio.sleep(30)
            await asyncio.sleep(self.delay)
            self.served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def stop(self) -> None:
        assert self.server is not None, "started"
        self.server.close()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def pool(*replicas: Replica | str, timeout_s: float = 5.0) -> TritonInference:
    urls = [r if isinstance(r, str) else await r.start() for r in replicas]
    return TritonInference(",".join(urls), ",".join(urls), timeout_s=timeout_s)


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def test_requests_go_to_the_replica_with_fewer_outstanding() -> None:
    async def main() -> None:
        slow, fast = Replica(delay=0.2), Replica(delay=0.0)
        triton = await pool(slow, fast)
        for _ in range(4):  # one at a time: equally idle replicas take turns
            await triton.forward("POST", "/v2/models/m/infer", b"x")
        assert slow.served == fast.served == 2
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0

        async def client() -> None:  # closed loop: the next request as soon as the last is answered
            while loop.time() < end:
                await triton.forward("POST", "/v2/models/m/infer", b"x")

        before = slow.served, fast.served
        await asyncio.gather(*(client() for _ in range(4)))
        slow_share, fast_share = slow.served - before[0], fast.served - before[1]
        # Each request the slow replica holds keeps it busier than the fast one: it gets few, the fast one the rest.
        assert fast_share > 10 * slow_share, (slow_share, fast_share)
        await triton.close()
        slow.stop()
        fast.stop()

    run(main())


@pytest.mark.parametrize("broken", ["refused", "drop"])
def test_a_connection_failing_before_any_response_is_retried_once_elsewhere(broken: str) -> None:
    async def main() -> None:
        good = Replica()
        bad: Replica | str
        if broken == "refused":
            bad = closed_port()
        else:
            bad = Replica()
            bad.mode = "drop"
        triton = await pool(bad, good)
        for _ in range(6):
            response = await triton.forward("POST", "/v2/models/m/infer", b"x")
            assert response.status == 200
        assert good.served == 6 and triton.upstreams[0].healthy is False
        assert triton.upstreams[0].failed == 1, "after one failure it gets no traffic until a health check passes"
        await triton.close()
        good.stop()
        if isinstance(bad, Replica):
            bad.stop()

    run(main())


def test_a_timeout_is_not_retried() -> None:
    async def main() -> None:
        hung, other = Replica(), Replica()
        hung.mode = "hang"
        triton = await pool(hung, other, timeout_s=0.3)
        triton._turn = len(triton.upstreams) - 1  # the next pick starts at the hung replica
        with pytest.raises(Unavailable):
            await triton.forward("POST", "/v2/models/m/infer", b"x")
        assert other.served == 0, "the first try may still be running: no second"
        await triton.close()
        hung.stop()
        other.stop()

    run(main())


def test_health_checks_take_a_replica_out_and_back() -> None:
    async def main() -> None:
        a, b = Replica(), Replica()
        triton = await pool(a, b)
        a.ready = False
        await triton.check_health()
        for _ in range(4):
            await triton.forward("POST", "/v2/models/m/infer", b"x")
        assert (a.served, b.served) == (0, 4)
        a.ready = True
        await triton.check_health()
        for _ in range(4):
            await triton.forward("POST", "/v2/models/m/infer", b"x")
        assert a.served == 2
        await triton.close()
        a.stop()
        b.stop()

    run(main())


def test_with_every_replica_failing_the_client_gets_a_503() -> None:
    async def main() -> None:
        triton = await pool(closed_port(), closed_port())
        with pytest.raises(Unavailable, match="every replica tried"):
            await triton.forward("POST", "/v2/models/m/infer", b"x")
        await triton.close()

    run(main())
