"""Who may reach the server at all: Host, Origin and bearer-token checks and the declared body
size, applied to every request before any route runs.

`Gate` holds the checks; `Guard` is the pure-ASGI middleware that runs them for HTTP (the
WebSocket route calls `Gate.check` itself, as a browser's WebSocket sends no preflight, and answers
a refusal as `refused` would, before accepting).
With `--keys` the credential is an access key (`keys.Keys.allows`) or the admin token. A check
every request needs belongs in `Gate.check`; one that only
some routes need is a FastAPI dependency on that router's `include_router` in `serve/app.py`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from streamchat.serve.policy import OriginPolicy, Refused
from streamchat.serve.wire import openai_error

if TYPE_CHECKING:
    from streamchat.serve.keys import Keys


def refused(err: Refused) -> JSONResponse:
    """A refusal as an OpenAI-shaped error response (a 401 with `WWW-Authenticate: Bearer`)."""
    response = JSONResponse(openai_error(err.message, err.code, err.status, err.param), status_code=err.status,
                            headers=err.headers)
    if err.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def bearer(headers: Any, query_token: str | None) -> str:
    """The credential a request carries: `Authorization: Bearer …`, else the page's `?token=`."""
    given: str = headers.get("authorization", "")
    return given[7:] if given.lower().startswith("bearer ") else (query_token or "")


class Gate:
    """The checks every request passes: Host and Origin (`OriginPolicy`), the token if the server
    has one, and a declared body size within the limit."""

    def __init__(self, origins: OriginPolicy, token: str | None, max_body_bytes: int, keys: Keys | None = None) -> None:
        self.origins, self.token, self.max_body_bytes, self.keys = origins, token, max_body_bytes, keys

    def authorized(self, headers: Any, query_token: str | None) -> bool:
        """With `--keys`, an access key or the token; else the token, if the server has one."""
        given = bearer(headers, query_token)
        if self.keys is not None:
            return self.keys.allows(given)
        if not self.token:
            return True
        return hmac.compare_digest(given.encode(), self.token.encode())

    def check(self, headers: Any, query_token: str | None, public: bool = False) -> None:
        """Host, Origin and token checks shared by HTTP and WebSocket requests; `public` files (the
        page's scripts, which the browser fetches without the token) skip the token only."""
        host = headers.get("host")
        self.origins.check_host(host)
        self.origins.check_origin(headers.get("origin"), host, headers.get("sec-fetch-site"))
        if not public and not self.authorized(headers, query_token):
            raise Refused(401, "missing or wrong bearer token" if self.keys is None else "missing or unknown access key",
                          "unauthorized" if self.keys is None else "invalid_api_key")

    def refusal(self, request: Request) -> Response | None:
        """Token, Host and Origin checks and the declared body size, before any route runs."""
        path = request.scope["path"]  # as request.url.path (no root_path here), without building the URL
        page_token = request.query_params.get("token") if path == "/" else None
        return self._refusal(request, page_token, public=path.startswith("/static/"))

    def preflight_refusal(self, request: Request) -> Response | None:
        """Host and Origin only, for an OPTIONS request on its way to `--cors`'s preflight answer: a
        browser sends a preflight without the token (QA-22: it skipped the Host check too)."""
        return self._refusal(request, None, public=True)

    def _refusal(self, request: Request, page_token: str | None, public: bool) -> Response | None:
        try:
            self.check(request.headers, page_token, public=public)
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_body_bytes:
                raise Refused(413, f"request body over {self.max_body_bytes} bytes", "too_large")
        except Refused as err:
            return refused(err)
        return None


class Guard:
    """Pure ASGI middleware for the request checks, on every HTTP request whatever its method (before
    routing, so a trailing slash's redirect never names a Host the gate refuses). With `methods`, on
    those methods only: `--cors` adds one outside its middleware, for OPTIONS, as the CORS middleware
    answers a preflight itself. Not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware relays
    every streamed chunk through an extra task and memory stream, which under load delayed every
    client's first event by seconds."""

    def __init__(self, app: ASGIApp, refusal: Callable[[Request], Response | None],
                 methods: frozenset[str] | None = None) -> None:
        self.app, self.refusal, self.methods = app, refusal, methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (self.methods is None or scope["method"] in self.methods):
            response = self.refusal(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
