"""The FastAPI application, assembled: the shared state, the access gate, the routers.

Each route module owns its paths: `page.py` (the web page), `routes_stream.py` (SSE `/stream`),
`routes_openai.py` (OpenAI-compatible `/v1`), `websocket.py` (`/ws`). Every request passes the
same gate first (`gate.py`: Host, Origin, token, body size); every turn is a `ChatSession`
built by `state.ServeState` from the server's settings, the request's checked fields and the
model policy; every stream cancels its upstream when the response ends, however it ends
(`http_io.py`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from streamchat.config import Settings
from streamchat.errors import StreamchatError
from streamchat.serve import health, keys, page, routes_openai, routes_stream, routes_votes, websocket
from streamchat.serve.gate import Guard
from streamchat.serve.http_io import RAW_SEND
from streamchat.serve.spec import SPEC_VAR, ServeSpec
from streamchat.serve.state import ServeOptions, ServeState
from streamchat.serve.wire import openai_error
from streamchat.service import Overrides

__all__ = ["SPEC_VAR", "ServeOptions", "ServeSpec", "app_for", "app_from_env", "create_app"]

def app_from_env() -> FastAPI:
    """The uvicorn factory for `serve --workers N`: the spec comes from the parent's environment."""
    import os

    from streamchat import logs
    from streamchat.config import load_settings
    from streamchat.providers._sdk import use_async_transport

    spec = ServeSpec.from_json(os.environ[SPEC_VAR])
    use_async_transport(spec.coalesce_ms / 1000)  # a fresh worker process: before the app imports the SDK
    settings = load_settings(Path(spec.config) if spec.config else None)
    logs.configure(debug=spec.debug, secrets=(spec.token or "",))
    return app_for(spec, settings)


def app_for(spec: ServeSpec, settings: Settings) -> FastAPI:
    """The app `streamchat serve` was started for (in its own process, or in each worker)."""
    server, options = spec.server()
    return create_app(settings, server, options)


def _warm(settings: Settings, server: Overrides) -> None:
    """Load the server's own model before the first request: its SDK import (~1 s), its clients, or
    the local weights — otherwise the first burst of clients all wait for it. A failure is left
    for a request to report.

    And the price database, which every turn's cost reads: ~0.2 s to load, and the first turn of
    each worker loaded it on the event loop. Measured in the first 200-client burst: that worker
    accepted some connections ~0.6 s late, and their streams took up to 2.6× their unloaded time.
    """
    from streamchat.cost import context_window
    from streamchat.service import resolve_target

    with contextlib.suppress(StreamchatError):
        context_window(settings, *settings.resolve(server.model))  # first: building the model may fail (no key)
        provider = resolve_target(settings, server.model, server.timeout or settings.timeout).provider
        prepare_async = getattr(provider, "prepare_async", None)
        if prepare_async is not None:
            prepare_async()


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    from streamchat.providers.base import aclose_all

    await aclose_all()


class _App(FastAPI):
    """FastAPI with the server's own `send` kept in each request's scope (`http_io.RAW_SEND`), outside
    every middleware: a streamed response sends its headers through the middleware (CORS adds its
    own; the error handlers note that the response started) and its body straight to the server.
    None of the middleware here reads or changes a response body; one that would (compression) must
    not be added without dropping this.

    And without FastAPI's native OpenTelemetry (0.165+): the server configures no tracer, meter or
    logger, yet each request looked the three global providers up (`telemetry` off skips that), and
    went through `ExceptionTelemetryMiddleware`, which only records for telemetry that is on — it is
    taken out of the stack. Together ~10% of a request's fixed CPU (py-spy, one worker)."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        inner: Any = getattr(stack, "app", None)  # ServerErrorMiddleware, then the telemetry one
        if type(inner).__name__ == "ExceptionTelemetryMiddleware":
            stack.app = inner.app  # type: ignore[attr-defined]
        return _RawSend(stack)


# FastAPI < 0.165 has no `telemetry` (nor the middleware above)
_NO_TELEMETRY: dict[str, bool] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                                  "auto_configure": False}


# the endpoints `_Direct` answers: each takes only the `Request` and returns its `Response`
_DIRECT = (routes_stream.stream_get, routes_stream.stream_post, routes_openai.chat_completions)
Endpoint = Callable[[Request], Awaitable[Response]]


class _Direct:
    """The innermost middleware: the streaming endpoints (`_DIRECT`) called straight from here, inside
    the gate and CORS as every route is, past FastAPI's exception middleware, its exit stack, the
    router's match against every route, and the wrappers and the dependency solver around an endpoint
    that takes only the `Request`. Every other request, and any other method on these paths (their
    405, HEAD's too), goes on to FastAPI as before. The table comes from the app's routes (`_direct`):
    a route with a dependency (`include_router(..., dependencies=[...])`) or a body limit of its own
    is not in it, so FastAPI still applies those."""

    def __init__(self, app: ASGIApp, endpoints: dict[tuple[str, str], Endpoint]) -> None:
        self.app, self.endpoints = app, endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def _direct(app: FastAPI) -> dict[tuple[str, str], Endpoint]:
    """(method, path) → endpoint, for the app's routes to `_DIRECT` endpoints that FastAPI would only
    call: no dependency (its own or its router's) and no body limit of their own."""
    try:  # FastAPI 0.165+ resolves included routers lazily: their routes, as the router matches them
        from fastapi.routing import iter_route_contexts

        routes: Iterable[Any] = iter_route_contexts(app.routes)
    except ImportError:
        routes = app.routes
    return {(method, route.path): route.endpoint for route in routes
            if getattr(route, "endpoint", None) in _DIRECT and not route.dependant.dependencies
            and getattr(route, "max_body_size", None) is None for method in route.methods}


class _RawSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def create_app(settings: Settings, server: Overrides, options: ServeOptions) -> FastAPI:
    """The app: the shared state, the access gate around every request, the routers.

    A new endpoint is a router in a module of its own, included below. A check that some routes need
    (an access key, a budget) is a dependency on their `include_router(..., dependencies=[...])`;
    one that every request needs is a check in `gate.Gate`. The streaming routes are answered by the
    innermost middleware (`_Direct`), past FastAPI's routing, unless such a dependency is on them.
    Middleware is added before CORS, so that CORS wraps it; with `--cors` only the preflight's own
    Host and Origin check (`Guard` for OPTIONS) is outside CORS."""
    native = {"telemetry": _NO_TELEMETRY} if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {}
    app = _App(title="streamchat", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan,
               **native)  # type: ignore[arg-type]
    state = ServeState(settings, server, options)
    app.state.serve = state
    _warm(settings, server)

    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_validation_error)

    app.mount("/static", page.static_files(), name="static")
    app.include_router(page.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_openai.router)
    app.include_router(websocket.router)
    app.include_router(health.router)
    app.include_router(routes_votes.router)
    if state.keys is not None:
        app.include_router(keys.router)

    app.add_middleware(_Direct, endpoints=_direct(app))  # first, so innermost: inside the guard and CORS
    app.add_middleware(Guard, refusal=state.gate.refusal)
    if options.cors_origin:  # added after, so it wraps the guard: refusals carry CORS headers too
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[options.cors_origin], allow_methods=["*"],
                           allow_headers=["*"])
        # outermost: CORS answers a preflight without asking the app, so its Host and Origin are checked here
        app.add_middleware(Guard, refusal=state.gate.preflight_refusal, methods=frozenset({"OPTIONS"}))

    _settle_heap()
    return app


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = "not_found" if exc.status_code == 404 else "http_error"
    return JSONResponse(openai_error(str(exc.detail), code, exc.status_code), status_code=exc.status_code,
                        headers=exc.headers)  # a 405's Allow


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
    return JSONResponse(openai_error(f"'{where}' {first.get('msg', 'is invalid')}", "invalid_request", 400, where or None),
                        status_code=400)


def _settle_heap() -> None:
    """Move everything built so far (FastAPI's and the SDK's pydantic schemas, imported modules)
    out of the collector's reach. Left in, each full collection under load walked it all again:
    measured 30–130 ms pauses, four of them in one 200-client run, stalling every stream. And
    collect the young generation less often: a streaming server makes many short-lived objects,
    which reference counting frees, and the default (every 700 allocations) ran ~180 collections a
    burst; this cut serve's CPU by ~5 % under the load benchmark."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
