"""The hot inference routes as raw ASGI, in front of the Starlette app that serves everything else.

With cold caches, as after every Triton call, each layer of Starlette's middleware and each Request and
Response object shows in the latency of every request; these routes skip them all. The reply goes out as
one head and one body, with the headers already encoded; errors get the very handlers the Starlette app
uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]
Reply = tuple[int, bytes, RawHeaders]  # status, body, headers other than Content-Length


class RawRequest:
    """The parts of an ASGI request that the inference routes read."""

    __slots__ = ("scope", "headers", "_receive")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope, self._receive = scope, receive
        # ASGI servers send header names lowercased; of repeated headers the first counts, as in Starlette.
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}

    @property
    def app(self) -> Any:
        return self.scope["app"]

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def path(self) -> str:
        return self.scope["path"]

    @property
    def query(self) -> str:
        return self.scope["query_string"].decode("latin-1")

    @property
    def path_params(self) -> dict[str, str]:
        return self.scope["path_params"]

    @property
    def query_params(self) -> dict[str, str]:
        """Of repeated parameters the last counts, as in Starlette."""
        return dict(parse_qsl(self.query, keep_blank_values=True)) if self.scope["query_string"] else {}

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


class RawRoute:
    """An ASGI app for Starlette's Route that serves `handler(request) -> (status, body, headers)`."""

    def __init__(self, handler: Callable[[RawRequest], Awaitable[Reply]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body, headers = await self.handler(RawRequest(scope, receive))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HotRoutes:
    """The ASGI app to run: requests that fully match one of `routes` (Routes with RawRoute endpoints, also
    registered with `app`) go straight to their endpoint; all else goes to `app`, which also answers a hot
    path asked for with the wrong method (405)."""

    def __init__(self, app: Starlette, routes: Sequence[Route]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope, app=self.app)
                    return await self.serve(route.endpoint, scope, receive, send)
        await self.app(scope, receive, send)

    async def serve(self, endpoint: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await endpoint(scope, receive, send)
        except Exception as exc:
            handlers = self.app.exception_handlers
            handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
