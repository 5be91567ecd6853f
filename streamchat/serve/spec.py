"""What `streamchat serve` was started with, as each worker process rebuilds it: light to import,
so that the parent of `--workers N` starts its workers without importing the app (FastAPI, the
SDKs) it never serves from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamchat.serve.policy import WS_IDLE_TIMEOUT_S, WS_PER_CLIENT

if TYPE_CHECKING:
    from streamchat.serve.state import ServeOptions
    from streamchat.service import Overrides

SPEC_VAR = "STREAMCHAT_SERVE_SPEC"
# A stream's tokens that come sooner than this after the last ones are sent with the next: at most
# 50 writes a second per stream. Below what an eye tells from a steady flow, and real providers
# stream 20–100 tokens a second, so few of their tokens wait; an upstream at 200 tokens a second
# costs a quarter of the wake-ups, events and socket writes (#34).
COALESCE_MS = 20.0


@dataclass(frozen=True)
class ServeSpec:
    """Everything `streamchat serve` was started with, so each worker process builds the same app."""

    config: str | None = None
    model: str | None = None
    timeout: float | None = None
    retry: bool = True
    token: str | None = None
    cors_origin: str | None = None
    allow_local_models: bool = False
    allow_models: tuple[str, ...] = ()
    ws_idle_timeout: float = WS_IDLE_TIMEOUT_S
    ws_per_client: int = WS_PER_CLIENT
    bind: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    debug: bool = False
    keys: bool = False
    state: str | None = None
    workers: int = 1
    coalesce_ms: float = COALESCE_MS

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        data = json.loads(text)
        data["allow_hosts"] = tuple(data.get("allow_hosts") or ())
        data["allow_models"] = tuple(data.get("allow_models") or ())
        return cls(**data)

    def server(self) -> tuple[Overrides, ServeOptions]:
        """The server's overrides and options, as `serve.app.app_for` builds the app from them (the
        app is built there, not here: this module stays light, and app.py imports it)."""
        from streamchat.serve.policy import OriginPolicy
        from streamchat.serve.state import ServeOptions
        from streamchat.service import Overrides

        options = ServeOptions(token=self.token, cors_origin=self.cors_origin, allow_local_models=self.allow_local_models,
                               allow_models=self.allow_models, ws_idle_timeout=self.ws_idle_timeout,
                               ws_per_client=self.ws_per_client,
                               origins=OriginPolicy.for_bind(self.bind, self.allow_hosts, self.cors_origin),
                               keys=self.keys, state=self.state, share_routes=self.workers > 1 or self.state is not None)
        return Overrides(model=self.model, timeout=self.timeout, retry=self.retry), options


def cors_origin(text: str) -> str:
    """`--cors ORIGIN` checked at start: one origin as a browser's `Origin` header gives it,
    `scheme://host[:port]`, which requests are compared to (lower-case, without a trailing `/` or
    the scheme's default port, a non-ASCII host as its IDNA A-label). `*` is refused: every web page could then spend the server's keys,
    and the gate refused such requests anyway while the CORS header said allow-all."""
    from urllib.parse import urlsplit

    from streamchat.errors import UsageError

    given = text.strip()
    if given == "*":
        raise UsageError("--cors '*' is refused: it would let any web page use this server and spend its keys",
                         hint="name the one origin a page is served from, e.g. --cors https://app.example")
    hint = "an origin is scheme://host[:port], as browsers send it, e.g. --cors https://app.example or http://localhost:3000"
    try:
        parts = urlsplit(given)
        port = parts.port
    except ValueError:
        raise UsageError(f"--cors {text!r} is not an origin", hint=hint) from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if "://" not in given:
        hint = f"an origin has its scheme: --cors https://{given} (or http://…, as the page's address has it)"
    if (not scheme or scheme == "file" or not host or parts.username is not None or parts.password is not None
            or parts.path not in ("", "/") or parts.query or parts.fragment or given.endswith(("?", "#"))
            or any(c.isspace() or ord(c) < 0x20 for c in given)):
        raise UsageError(f"--cors {text!r} is not an origin", hint=hint)
    if not host.isascii():  # a browser's Origin carries the IDNA A-label, as a redirect's host is sent
        from streamchat.providers._http import a_label

        try:
            host = a_label(host)
        except ValueError:
            raise UsageError(f"--cors {text!r} is not an origin", hint="its host is no valid internationalized"
                             " name: give it as the browser's Origin shows it (xn--…)") from None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")
