"""What every route of one server shares: its settings, options, access gate and model policy,
and how a checked request becomes a turn.

`create_app` builds one `ServeState` and keeps it on `app.state`; a route reaches it with
`serve_state(request)` (a `Request` or a `WebSocket`), so route modules hold no closures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import cast

from starlette.requests import HTTPConnection

from streamchat.config import Settings
from streamchat.conversation import Conversation
from streamchat.errors import StreamchatError
from streamchat.serve.bridge import TurnStream
from streamchat.serve.gate import Gate
from streamchat.serve.parse import Call
from streamchat.serve.policy import WS_IDLE_TIMEOUT_S, WS_PER_CLIENT, ModelPolicy, OriginPolicy, Refused
from streamchat.serve.wire import http_status
from streamchat.service import ChatSession, Overrides


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


class ServeState:
    """One server's settings and policies, shared by its routes."""

    def __init__(self, settings: Settings, server: Overrides, options: ServeOptions) -> None:
        self.settings, self.server, self.options = settings, server, options
        self.models = ModelPolicy(settings, server.model, allow_local=options.allow_local_models,
                                  patterns=options.allow_models)
        self.gate = Gate(options.origins, options.token, options.max_body_bytes)
        self.sockets: Counter[str] = Counter()  # open WebSockets per client address

    def turn(self, call: Call) -> tuple[TurnStream, str]:
        """A turn through the same ChatSession as the CLI (config system/temperature/max_tokens apply)."""
        options = self.options
        if sum(len(m.content) for m in call.messages) > options.max_prompt_chars:
            raise Refused(422, f"prompt longer than {options.max_prompt_chars} characters", "prompt_too_long")
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
                          "unsupported_parameter")
        if results:
            return TurnStream(session, None), session.model_name
        return TurnStream(session, last.content, last.attachments), session.model_name


def serve_state(conn: HTTPConnection) -> ServeState:
    """The server's state, from any request or WebSocket of its app."""
    return cast(ServeState, conn.app.state.serve)
