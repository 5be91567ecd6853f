"""Who may use the server and which models they may ask for: pure checks, tested on their own.

The server binds loopback and has no token by default, so a browser on the same machine
is the attacker to keep out: another origin's page (CSRF, WebSocket hijacking) and a
DNS-rebinding hostname. Requests name models, so the client must not be able to pick
local files or providers the operator did not offer.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from streamchat.config import Settings
from streamchat.errors import StreamchatError

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WS_IDLE_TIMEOUT_S = 300.0  # a WebSocket with no message and no answer for this long is closed
WS_PER_CLIENT = 32  # open WebSockets per client address: 1,000 idle ones held every connection slot (503s)


class Refused(Exception):
    """A request refused before any work: HTTP status, message, OpenAI error code and the request
    parameter at fault (OpenAI's `param`, e.g. `messages[0].role`; None: no one parameter)."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers  # e.g. Retry-After on a 429


def hostname(host_header: str) -> str:
    """`Host` header → lower-case name without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True)
class OriginPolicy:
    """Host and Origin checks. `allowed_hosts` empty means any Host (a token guards the server)."""

    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    cors_origin: str | None = None

    @classmethod
    def for_bind(cls, bind: str, extra_hosts: tuple[str, ...] = (), cors_origin: str | None = None) -> OriginPolicy:
        """Loopback binds accept loopback names (and the bind name and `--allow-host`s) only."""
        if hostname(bind) in LOOPBACK_NAMES or extra_hosts:
            names = LOOPBACK_NAMES | {hostname(bind)} | {hostname(h) for h in extra_hosts}
            return cls(frozenset(names), cors_origin)
        return cls(frozenset(), cors_origin)

    def check_host(self, host_header: str | None) -> None:
        if self.allowed_hosts and hostname(host_header or "") not in self.allowed_hosts:
            raise Refused(421, "this server does not answer to that Host name (use 127.0.0.1 or --allow-host)",
                          "host_not_allowed")

    def check_origin(self, origin: str | None, host_header: str | None, fetch_site: str | None) -> None:
        """Same-origin, the `--cors` origin, or a request that is not from a browser page."""
        if origin is not None:
            if self.cors_origin is not None and origin == self.cors_origin:
                return
            parts = urlsplit(origin)
            if origin == "null" or parts.netloc.lower() != (host_header or "").lower():
                raise Refused(403, "cross-origin requests are refused (see --cors)", "origin_not_allowed")
            return
        if fetch_site in ("cross-site", "same-site") and self.cors_origin is None:
            raise Refused(403, "cross-site requests are refused (see --cors)", "origin_not_allowed")


class ModelPolicy:
    """The models a client may choose — one decision for requests and `GET /v1/models/{id}`:
    what `/v1/models` lists (the server's own, the routes, the aliases, the listed models of configured
    remote providers; a route's deployments only as the route), remote `provider:model`s matching an `--allow-model` pattern, and, with
    `allow_local`, any GGUF path the server can read. A key in the environment is not an offer."""

    def __init__(self, settings: Settings, default: str | None, *, allow_local: bool = False,
                 patterns: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.default = default
        self.allow_local = allow_local
        self.patterns = patterns
        cfg, model = settings.resolve(default)
        route = settings.route(default)
        self._default_name = route.name if route is not None else f"{cfg.name}:{model}"
        self._offered = self._list()

    def choose(self, spec: Any) -> str | None:
        """The model spec to use for a request's `model` field (None: the server's default)."""
        if spec is None or spec == "":
            return self.default
        if not isinstance(spec, str):
            raise Refused(400, "'model' must be a string", "invalid_model", param="model")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in spec):
            # no model is named so; an `--allow-model` glob matched them all, and serve's log then
            # carried the name's escape sequences to the operator's terminal (QA-7)
            raise Refused(400, "'model' holds a control or format character", "invalid_model", param="model")
        shown = "(a file path)" if "/" in spec or spec.endswith(".gguf") else spec[:80]  # never echo paths
        try:
            cfg, model = self.settings.resolve(spec)
        except StreamchatError:
            raise Refused(404, f"unknown model {shown!r} — GET /v1/models lists the models offered",
                          "model_not_found") from None
        target = f"{cfg.name}:{model}"
        if spec in self._offered or target in self._offered:
            return spec
        if not cfg.spec.remote:  # its models are files on this machine
            if self.allow_local:
                return spec
        elif any(fnmatchcase(target, p) for p in self.patterns):
            return spec
        raise Refused(404, f"model {shown!r} is not offered by this server — GET /v1/models lists them",
                      "model_not_found")

    def offered(self) -> list[str]:
        """What /v1/models lists: the default, the aliases, configured remote providers' models, and
        the `--allow-model` entries that name one remote model (no wildcard)."""
        return list(self._offered)

    def _list(self) -> list[str]:
        names: list[str] = [self._default_name, *self.settings.routes, *self.settings.aliases]
        for name, prov in self.settings.providers.items():
            if prov.spec.remote:
                names += [f"{name}:{m}" for m in ([prov.default_model] if prov.default_model else []) + list(prov.models)]
        for pattern in self.patterns:
            provider = self.settings.providers.get(pattern.partition(":")[0])
            if not any(c in pattern for c in "*?[") and provider is not None and provider.spec.remote:
                names.append(pattern)
        return list(dict.fromkeys(names))
