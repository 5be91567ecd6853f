"""What every route of one server shares: its settings, options, access gate and model policy,
and how a checked request becomes a turn.

`create_app` builds one `ServeState` and keeps it on `app.state`; a route reaches it with
`serve_state(request)` (a `Request` or a `WebSocket`), so route modules hold no closures.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import HTTPConnection

from streamchat.config import Settings
from streamchat.conversation import Conversation
from streamchat.errors import StreamchatError
from streamchat.serve.bridge import TurnStream
from streamchat.serve.gate import Gate, bearer
from streamchat.serve.parse import Call
from streamchat.serve.policy import WS_IDLE_TIMEOUT_S, WS_PER_CLIENT, ModelPolicy, OriginPolicy, Refused
from streamchat.serve.wire import http_status
from streamchat.service import ChatSession, Overrides

if TYPE_CHECKING:
    from streamchat.serve.keys import Keys


@dataclass(frozen=True)
class ServeOptions:
    token: str | None = None
    cors_origin: str | None = None
    origins: OriginPolicy = OriginPolicy()
    allow_local_models: bool = False
    allow_models: tuple[str, ...] = ()  # `--allow-model` patterns
    ws_idle_timeout: float = WS_IDLE_TIMEOUT_S
    ws_per_client: int = WS_PER_CLIENT
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 200_000
    keys: bool = False  # `--keys`: an access key on every request, each turn metered
    state: str | None = None  # `--state`: where the keys live (None: access.db in the data dir)
    share_routes: bool = False  # routes' cooldowns through the state store (`--workers N`, `--state`; `--keys` always)


class ServeState:
    """One server's settings and policies, shared by its routes."""

    def __init__(self, settings: Settings, server: Overrides, options: ServeOptions) -> None:
        self.settings, self.server, self.options = settings, server, options
        self.models = ModelPolicy(settings, server.model, allow_local=options.allow_local_models,
                                  patterns=options.allow_models)
        self.keys: Keys | None = None
        if options.keys:
            from streamchat.access.stores import open_state
            from streamchat.serve.keys import Keys

            self.keys = Keys(open_state(options.state), settings, options.token)
        elif options.share_routes and settings.routes:
            _share_cooldowns(options.state)
        self.gate = Gate(options.origins, options.token, options.max_body_bytes, self.keys)
        self.sockets: Counter[str] = Counter()  # open WebSockets per client address

    async def turn(self, call: Call, headers: Any) -> tuple[TurnStream, str]:
        """A turn through the same ChatSession as the CLI (config system/temperature/max_tokens apply);
        with `--keys`, admitted against the key in `headers` and settled when it ends."""
        options = self.options
        if sum(len(m.content) for m in call.messages) > options.max_prompt_chars:
            raise Refused(422, f"prompt longer than {options.max_prompt_chars} characters", "prompt_too_long",
                          param="messages")
        overrides = replace(self.server, model=self.models.choose(call.model), system=call.system,
                            temperature=call.temperature, max_tokens=call.max_tokens, params=call.params,
                            tools=call.tools, tool_choice=call.tool_choice, schema=call.schema)
        last = call.messages[-1]
        results = last.role == "tool"  # the client ran our tool calls: the model goes on from its results
        try:
            session = ChatSession(self.settings, overrides,
                                  conversation=Conversation(seed=call.messages if results else call.messages[:-1]))
        except StreamchatError as err:  # never echo server paths or key details to a client
            raise Refused(http_status(err), f"model '{overrides.model}' is not available on this server "
                          f"({err.code})", err.code) from None
        unsupported = sorted({k for k, _ in call.params} - session.target.provider.params)
        if unsupported:
            raise Refused(400, f"parameter '{unsupported[0]}' is not supported by {session.target.provider_name}",
                          "unsupported_parameter", param=unsupported[0])
        stream = TurnStream(session, None) if results else TurnStream(session, last.content, last.attachments)
        if self.keys is not None:
            ticket = await self.keys.admit(bearer(headers, None), session, call)
            if ticket is not None:
                stream.on_end = functools.partial(self.keys.settle, ticket, session)
        return stream, session.model_name


def _share_cooldowns(url: str | None) -> None:
    """Every worker (and server) on the state store skips a deployment one of them saw fail; a store
    that cannot be opened leaves each worker its own cooldowns, as before."""
    import logging

    from streamchat.access.stores import open_state
    from streamchat.routing import share_cooldowns

    try:
        share_cooldowns(open_state(url))
    except StreamchatError as err:
        logging.getLogger("streamchat.serve").warning("route cooldowns stay per worker: %s", err)


def serve_state(conn: HTTPConnection) -> ServeState:
    """The server's state, from any request or WebSocket of its app."""
    return cast(ServeState, conn.app.state.serve)
