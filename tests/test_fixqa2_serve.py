"""serve's QA-22..QA-26 fixes, in-process over ASGI: every method passes the Host check, `/ws` refusals
carry their status, empty content is a 400, `GET /stream` is checked as `POST /stream` is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

import httpx  # noqa: E402
from test_serve_policy import _app  # noqa: E402

from streamchat.serve.policy import OriginPolicy  # noqa: E402

TOKEN = "fixqa2-token-0123456789"
APP_ORIGIN = "http://localhost:3000"


async def _ask(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
        return await client.request(method, path, **kwargs)


def ask(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return asyncio.run(_ask(app, method, path, **kwargs))


@pytest.mark.parametrize("cors", [None, APP_ORIGIN])
def test_options_requests_pass_the_host_check_and_never_redirect_to_a_foreign_host(cors):
    """QA-22: every OPTIONS skipped the gate, so a foreign Host was not 421 and a trailing slash
    answered 307 to `http://evil.example/...`; with --cors a preflight from that Host got CORS headers."""
    app = _app(token=TOKEN, cors_origin=cors, origins=OriginPolicy.for_bind("127.0.0.1", cors_origin=cors))
    evil = {"Host": "evil.example"}
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    for method in ("OPTIONS", "GET", "POST"):
        for path in ("/v1/chat/completions/", "/health/", "/stream/", "/stream", "/ws"):
            answer = ask(app, method, path, headers=evil)
            assert answer.status_code == 421, (method, path, answer.status_code, answer.headers)
            assert "evil.example" not in answer.headers.get("location", "")
    assert ask(app, "OPTIONS", "/stream", headers={**evil, **preflight}).status_code == 421
    assert ask(app, "OPTIONS", "/stream", headers={**preflight, "Origin": "http://evil.example"}).status_code == 403
    # a loopback Host: the token is still wanted on a plain OPTIONS, and the slash redirect stays on that Host
    assert ask(app, "OPTIONS", "/stream").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert ask(app, "OPTIONS", "/stream", headers=auth).status_code == 405
    moved = ask(app, "GET", "/health/", headers=auth)
    assert moved.status_code == 307 and moved.headers["location"].startswith("http://127.0.0.1:8765/")
    answer = ask(app, "OPTIONS", "/stream", headers=preflight)
    if cors:  # a browser's preflight carries no token: it is answered by CORS
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    else:  # no CORS: another origin's preflight is refused as its request would be
        assert answer.status_code == 403
