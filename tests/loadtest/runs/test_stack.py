from __future__ import annotations

import json
import urllib.request

from loadtest.runs.stack import create_experiment


def test_an_experiment_is_created_with_equal_weights_through_the_admin_api(monkeypatch) -> None:
    sent: list[urllib.request.Request] = []

    class Response:
        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b"{}"

    def urlopen(req: urllib.request.Request, timeout: float) -> Response:
        sent.append(req)
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    create_experiment("127.0.0.1:4", "ab", ("a", "b"), "key")
    [req] = sent
    assert req.get_method() == "PUT" and req.full_url == "http://127.0.0.1:4/admin/experiments/ab"
    assert req.get_header("X-api-key") == "key" and req.get_header("Content-type") == "application/json"
    assert isinstance(req.data, bytes) and json.loads(req.data) == {"arms": {"a": 1.0, "b": 1.0}}
