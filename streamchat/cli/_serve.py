"""`serve`: the HTTP server's command line; the server itself lives in streamchat.serve."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from typing import Annotated, Any, Optional

import typer

from streamchat.cli._access import StateOpt
from streamchat.cli._app import (
    ConfigOpt,
    DebugOpt,
    ModelOpt,
    TimeoutOpt,
    _command,
    _globals,
    _key_secrets,
    _number_in,
    app,
)
from streamchat.errors import UsageError
from streamchat.serve.policy import WS_IDLE_TIMEOUT_S, WS_PER_CLIENT
from streamchat.serve.spec import COALESCE_MS, cors_origin

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_TOKEN_LENGTH = 16
SERVE_MAX_CONNECTIONS = 1000
# On Ctrl-C or SIGTERM, streams in flight get this long to finish, then they are cut: uvicorn's
# default waited for every one (a long answer kept a stopped serve up for its whole length).
SHUTDOWN_GRACE_S = 5


@app.command("serve", help="Serve streams over HTTP: SSE /stream, OpenAI-compatible /v1, WebSocket /ws, web page /.",
             short_help="Serve chat over HTTP (SSE, /v1, WebSocket).")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", callback=_number_in(0, 65535),
                                         help="Port to listen on.")] = 8765,
    model: ModelOpt = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="STREAMCHAT_TOKEN", show_envvar=False, metavar="TOKEN",
        help="Require 'Authorization: Bearer TOKEN' (the page takes ?token=). Prefer the variable: "
             "arguments are visible in ps [env: STREAMCHAT_TOKEN].")] = None,
    cors: Annotated[Optional[str], typer.Option(
        "--cors", metavar="ORIGIN", help="Allow pages from this origin (scheme://host[:port]).")] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option(
        "--allow-host", metavar="NAME", help="Also answer to this Host name (repeatable).")] = None,
    allow_local_models: Annotated[bool, typer.Option(
        "--allow-local-models", help="Let clients pick any local GGUF file by path (local:PATH).")] = False,
    allow_model: Annotated[Optional[list[str]], typer.Option(
        "--allow-model", metavar="PATTERN",
        help="Also let clients pick remote models matching this glob, e.g. 'openai:gpt-4o*' (repeatable).")] = None,
    ws_idle_timeout: Annotated[float, typer.Option(
        "--ws-idle-timeout", metavar="SECONDS", callback=_number_in(0.1, 86400),
        help="Close a WebSocket that sent nothing for this long while no answer streams.")] = WS_IDLE_TIMEOUT_S,
    ws_per_client: Annotated[int, typer.Option(
        "--ws-per-client", metavar="N", callback=_number_in(1), help="Open WebSockets allowed per client address.")] = WS_PER_CLIENT,
    timeout: TimeoutOpt = None,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed upstream requests.")] = False,
    workers: Annotated[str, typer.Option("--workers", metavar="N|auto", envvar="STREAMCHAT_WORKERS", show_envvar=False,
                                         help="Server processes (uvicorn workers); auto = one per core; 1 = this "
                                              "process alone [env: STREAMCHAT_WORKERS].")] = "auto",
    coalesce_ms: Annotated[float, typer.Option(
        "--coalesce-ms", metavar="MS", callback=_number_in(0, 250),
        help="Send a stream's tokens at most every MS milliseconds: tokens arriving faster go out together, "
             "for less CPU per token; 0 = each as it arrives.")] = COALESCE_MS,
    keys: Annotated[bool, typer.Option(
        "--keys", help="Require an access key (streamchat access create) on every request, metered against its limits; "
                       "the token stays the admin's.")] = False,
    state: StateOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    g = _globals(ctx).merge(config=config, debug=debug, model=model, timeout=timeout)
    with _command(g) as (settings, env, ui):
        if cors is not None:  # as browsers send an Origin: a value that can never match is a mistake
            cors = cors_origin(cors)
        if token is not None and (not token or token != token.strip()
                                  or host not in LOOPBACK and len(token) < MIN_TOKEN_LENGTH):
            raise UsageError(f"the token must have no surrounding spaces, and off loopback at least {MIN_TOKEN_LENGTH}"
                             " characters", hint='make one with: export STREAMCHAT_TOKEN="$(openssl rand -hex 24)"')
        if host not in LOOPBACK and not token and not keys:
            raise UsageError(f"refusing to bind {host} without a token",
                             hint="set STREAMCHAT_TOKEN (or --token), pass --keys, or bind 127.0.0.1")
        if keys:  # the store must answer now (exit 3 otherwise), then each worker opens its own
            from streamchat.access.stores import open_state

            open_state(state).close()
        if any(a == "--token" or a.startswith("--token=") for a in sys.argv):
            ui.warn("warning: --token is visible to other users in ps; prefer STREAMCHAT_TOKEN")
        try:
            import uvicorn

            from streamchat import logs
            from streamchat.serve.accept import LOOP
            from streamchat.serve.protocol import HTTP_PROTOCOL, MAX_HEADER_BYTES
            from streamchat.serve.spec import SPEC_VAR, ServeSpec
            from streamchat.serve.workers import address, bound_socket, check_port_free, run_server, run_workers, spreads_connections

            if importlib.util.find_spec("fastapi") is None:  # each worker imports it: say so here, once
                raise ImportError("fastapi")
        except ImportError:
            from streamchat.errors import ConfigError

            raise ConfigError("streamchat serve needs FastAPI and uvicorn",
                              hint="install them with: pip install 'streamchat[serve]'") from None
        from streamchat.service import ChatSession, Overrides

        processes = (os.cpu_count() or 1) if workers == "auto" else int(workers) if workers.isdigit() else 0
        if processes < 1:
            raise UsageError(f"--workers must be a number ≥ 1 or auto, not {workers!r}")
        if processes == 1:  # this process serves: the SDKs' asyncio transport, before the session below imports one
            from streamchat.providers._sdk import use_async_transport

            use_async_transport(coalesce_ms / 1000)
        # else the workers serve, each choosing it (app_from_env); here the session only checks the model and its
        # key on the lean path, without the SDK: under load that took 0.8 s and 24 MB, against 21 s and 65 MB
        # the address first: a taken port or a wrong --host fails before a local model loads
        sock = bound_socket(host, port) if processes == 1 else None
        if processes > 1 and spreads_connections():
            check_port_free(host, port)
        overrides = Overrides(model=g.model, timeout=g.timeout, retry=not no_retry)
        session = ChatSession(settings, overrides, ui=ui)  # fail fast; loads a local model once
        overrides = replace(overrides, model=overrides.model or session.model_name)
        spec = ServeSpec(config=str(settings.path) if settings.path else None, model=overrides.model,
                         timeout=overrides.timeout, retry=overrides.retry, token=token, cors_origin=cors,
                         allow_local_models=allow_local_models,
                         allow_models=tuple(allow_model or ()), ws_idle_timeout=ws_idle_timeout,
                         ws_per_client=ws_per_client, bind=host, allow_hosts=tuple(allow_host or ()),
                         debug=g.debug, keys=keys, state=state, workers=processes,
                         coalesce_ms=coalesce_ms)
        banner = (f"streamchat serving {session.model_name} on http://{address(host, port)}/"
                  + (f" with {processes} worker processes" if processes > 1 else ""))
        logs.configure(debug=g.debug, secrets=(token or "", *_key_secrets(settings)))
        common: dict[str, Any] = dict(
            host=host, port=port, http=HTTP_PROTOCOL, loop=LOOP, log_config=None,
            log_level="debug" if g.debug else "warning", limit_concurrency=SERVE_MAX_CONNECTIONS,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            timeout_keep_alive=5, ws_max_size=1024 * 1024, ws_max_queue=16, h11_max_incomplete_event_size=MAX_HEADER_BYTES)
        # the banner once the socket listens (each worker's, with workers): a script that waits for it
        # and connects at once is answered, not refused
        if sock is not None:  # on a socket of ours: the loop's greedy accept serves sockets it is given
            from streamchat.serve.app import app_for

            run_server(uvicorn.Config(app_for(spec, settings), **common), sock, lambda: ui.notice(banner))
        else:  # each worker process builds the same app from the spec (serve is stateless)
            os.environ[SPEC_VAR] = spec.to_json()
            run_workers(uvicorn.Config("streamchat.serve.app:app_from_env", factory=True, workers=processes, **common),
                        lambda: ui.notice(banner))
