"""Error hierarchy, each error's exit code (`ExitStatus`), and the one place that maps SDK/transport faults onto them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from streamchat.exit_status import ExitStatus

if TYPE_CHECKING:
    from streamchat.events import TurnResult

class StreamchatError(Exception):
    """An error the user can act on: ``str(err)`` is the one line shown on stderr."""

    exit_code = ExitStatus.ERROR
    code = "error"
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None,
                 repl_hint: str | None = None, repl_message: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        self.repl_hint = repl_hint  # the hint in the REPL's words (/reasoning off), where `hint` names flags
        self.repl_message = repl_message  # the message in the REPL's words, where `message` names a flag

    def __str__(self) -> str:
        return self.said()

    def said(self, *, repl: bool = False) -> str:
        """The one line, its hint as the front end words it (`repl`: REPL commands, not flags)."""
        hint = self.repl_hint if repl and self.repl_hint else self.hint
        message = self.repl_message if repl and self.repl_message else self.message
        # Upstream messages sometimes echo the key ("Incorrect API key provided: sk-…"): never show it.
        return redact(f"{message} — {hint}" if hint else message)


class UsageError(StreamchatError):
    exit_code = ExitStatus.USAGE
    code = "usage"


class ConfigError(StreamchatError):
    exit_code = ExitStatus.CONFIG
    code = "config"


class AuthError(StreamchatError):
    exit_code = ExitStatus.CONFIG
    code = "auth"


class BadRequestError(StreamchatError):
    exit_code = ExitStatus.REQUEST
    code = "bad_request"


class ModelNotFoundError(BadRequestError):
    code = "model_not_found"


class ContextOverflowError(BadRequestError):
    code = "context_length"


class RateLimitError(StreamchatError):
    exit_code = ExitStatus.SERVER
    code = "rate_limited"
    retryable = True


class ServerError(StreamchatError):
    exit_code = ExitStatus.SERVER
    code = "server_error"
    retryable = True


class OverloadedError(ServerError):
    code = "overloaded"


class ProtocolError(StreamchatError):
    """The server sent something that is not a valid stream (bad JSON, cut stream)."""

    exit_code = ExitStatus.SERVER
    code = "protocol_error"


class IncompleteStreamError(ProtocolError):
    code = "incomplete"


class NetworkError(StreamchatError):
    exit_code = ExitStatus.NETWORK
    code = "network"
    retryable = True


class TimeoutError_(NetworkError):
    code = "timeout"


class ToolError(StreamchatError):
    """A tool source failed: an MCP server that did not start, or an unknown tool name."""

    exit_code = ExitStatus.TOOL
    code = "tool_error"


class ToolStepLimitError(ToolError):
    code = "tool_steps"


class SchemaMismatchError(StreamchatError):
    """--schema: the answer did not fit, even after the corrective request (a race's lane; a single
    answer says it on its own line, structured.report_data)."""

    exit_code = ExitStatus.SCHEMA
    code = "schema"


class PluginError(StreamchatError):
    """Python tools or a plugin could not load: a --functions file that fails to import, a
    function without type hints, a name two tools share, a plugin's module that fails."""

    exit_code = ExitStatus.PLUGIN
    code = "plugin"


class LogDamagedError(StreamchatError):
    """The conversation log's file is corrupt: only SQLite's own recovery can help."""

    exit_code = ExitStatus.LOG_DAMAGED
    code = "log_damaged"


class UnsafePermissionsError(StreamchatError):
    """A config file or directory that another user could change: refused, as ssh refuses one."""

    exit_code = ExitStatus.UNSAFE
    code = "unsafe_permissions"


_KEYLIKE = re.compile(r"(\bsk-[A-Za-z0-9_\-]{6,}|\bBearer\s+\S+|\bBasic\s+[A-Za-z0-9+/=]{8,})")
_URL_USERINFO = re.compile(r"(?<=://)[^/?#\s@]+@")  # https://user:pass@host: the part before the host
# a URL's query, up to a fragment or the URL's end (punctuation after it, `…?token=x).` in a sentence, left out)
_URL_QUERY = re.compile(r"(?<=://)[^?#\s\"'<>]*\?([^#\s\"'<>]*?)(?=[.,:;!?)\]}]*(?:[#\s\"'<>]|$))")
_QUERY_PARAM = re.compile(r"([^=&;]+)=([^&;]*)")
_PARAM_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")  # snake, kebab and camelCase parts of a name
_SECRET_WORDS = frozenset({"token", "key", "apikey", "sig", "signature", "password", "passwd", "pwd", "secret",
                           "auth", "credential", "credentials"})


_known: tuple[str, ...] = ()  # the key values in use: replaced whole, so readers on other threads need no lock


def remember_secret(value: str) -> None:
    """Make `redact` hide this value wherever it appears, whatever its shape: a provider may quote a
    key back in its error (`gsk_live_…`), and no pattern knows every vendor's format."""
    global _known
    if len(value) >= 8 and value not in _known:  # shorter ones would mangle ordinary words
        _known = tuple(sorted((*_known, value), key=len, reverse=True))  # longest first: a key holding another


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys from text that may reach a terminal, a log, the store or a gateway client:
    the values remembered and given here, and anything shaped like a key."""
    for secret in (*secrets, *_known):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return mask_url(_KEYLIKE.sub("***", text))


def mask_url(text: str) -> str:
    """Credentials in a URL shown as ***: a user and password (a base_url like https://user:pass@host/v1,
    as ***@) and the value of a query parameter named like one (`?token=`, `api_key`, `sig`,
    `X-Amz-Signature`, `client_secret`, `password`, `auth`…: the last word of the name)."""
    return mask_query(_URL_USERINFO.sub("***@", text))


def mask_query(text: str) -> str:
    """The values of credential-like query parameters in every URL of `text` as *** (the rest of
    the URL as it is): what `-f URL` shows, names to the model and stores (`fetch.shown_url`)."""
    if "?" not in text:
        return text
    return _URL_QUERY.sub(lambda m: m[0][:m.start(1) - m.start(0)] + _QUERY_PARAM.sub(_masked_param, m[1]), text)


def _masked_param(m: re.Match[str]) -> str:
    words = _PARAM_WORDS.findall(m[1])
    return f"{m[1]}=***" if m[2] and words and words[-1].lower() in _SECRET_WORDS else m[0]


def retry_after(response: object) -> float | None:
    """Seconds from a Retry-After header, when the response has one."""
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_status(status: int | None, detail: str | None, err_type: str | None, *, model: str, provider: str,
                retry_after: float | None = None, context_overflow: bool = False) -> StreamchatError:
    """Map an HTTP status (None: an error event inside a 200 stream) to our error with a fix.

    `context_overflow` is the adapter's reading of its provider's error code: a 400 is
    "the prompt is too long" only when the provider says so.
    """
    said = f": {detail}" if detail else ""
    http = f" (HTTP {status})" if status is not None else ""
    if err_type == "overloaded_error" or status == 529:
        return OverloadedError(f"{provider} is overloaded{http}{said}", hint="try again in a moment",
                               retry_after=retry_after)
    if status == 429 or err_type in ("rate_limit_error", "rate_limit_exceeded"):
        wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        return RateLimitError(f"{provider} rate limit reached{http}{wait}{said}",
                              hint="wait and retry, or use another model", retry_after=retry_after)
    if status is None:
        return ServerError(f"{provider} reported an error mid-stream{said}", hint="retry")
    if status == 401:
        return AuthError(f"{provider} rejected the API key{http}{said}",
                         hint=f"check the key for provider '{provider}' (streamchat config show)")
    if status == 403:
        return AuthError(f"{provider} denied access{http}{said}", hint="check that the key may use this model")
    if status == 404:
        return ModelNotFoundError(f"{provider} does not know model '{model}'{http}{said}",
                                  hint="run `streamchat models` to list available models")
    if context_overflow:
        return ContextOverflowError(f"the prompt is too long for '{model}'{http}{said}",
                                    hint="shorten the input or use a model with a larger context")
    if status in (400, 413, 422):
        return BadRequestError(f"{provider} refused the request{http}{said}", hint="check the options and model name")
    if status == 408:
        return NetworkError(f"{provider} timed out the request{http}{said}", hint="try again")
    if status >= 500 or status == 409:
        return ServerError(f"{provider} server error{http}{said}", hint="try again later", retry_after=retry_after)
    return BadRequestError(f"{provider} answered HTTP {status}{said}")


def map_transport(exc: BaseException, *, provider: str, base_url: str | None = None,
                  started: bool = False) -> StreamchatError | None:
    """A transport fault (httpx2, sockets, TLS, bad JSON) by type; None when `exc` is not one."""
    import json
    import socket
    import sys

    httpx2 = sys.modules.get("httpx2")  # not imported: no fault of its (the lean transport's path)
    timeouts: tuple[type[BaseException], ...] = (TimeoutError, httpx2.TimeoutException) if httpx2 else (TimeoutError,)
    transport: tuple[type[BaseException], ...] = (OSError, httpx2.TransportError) if httpx2 else (OSError,)
    where = f" at {base_url}" if base_url else ""
    causes = _causes(exc)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):  # first: the SDKs' aiohttp transport (serve)
        # raises a refused connect as httpx's ConnectTimeout, which read "no response … within the timeout"
        return NetworkError(f"connection refused by {provider}{where}", hint="is the server running? check base_url")
    if isinstance(exc, timeouts):
        return timed_out(provider=provider, base_url=base_url, started=started)
    if isinstance(exc, json.JSONDecodeError):
        return ProtocolError(f"{provider} sent a malformed stream chunk", hint="the server or proxy is misbehaving; retry")
    if not isinstance(exc, transport):
        return None
    ssl = sys.modules.get("ssl")  # no TLS without it
    if ssl is not None and any(isinstance(c, ssl.SSLError) for c in causes):
        return NetworkError(f"TLS error talking to {provider}{where}: {_short(causes[-1])}",
                            hint="check the server certificate, SSL_CERT_FILE or proxy settings")
    if httpx2 is not None and any(isinstance(c, httpx2.ProxyError) for c in causes):
        return NetworkError(f"proxy error talking to {provider}{where}: {_short(causes[-1])}",
                            hint="check HTTPS_PROXY/HTTP_PROXY")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return NetworkError(f"cannot resolve the host of {provider}{where}", hint="check base_url and DNS")
    if started:
        return NetworkError(f"the connection to {provider} dropped mid-answer", hint="the partial answer was kept; retry")
    return NetworkError(f"cannot reach {provider}{where}: {_short(causes[-1])}", hint="check the network and base_url")


def timed_out(*, provider: str, base_url: str | None, started: bool) -> StreamchatError:
    where = f" at {base_url}" if base_url else ""
    if started:
        return TimeoutError_(f"the {provider} stream stalled mid-answer{where}",
                             hint="the partial answer was kept; retry or raise `timeout`")
    return TimeoutError_(f"no response from {provider}{where} within the timeout", hint="check the server, or raise --timeout")


def unexpected(exc: BaseException, provider: str) -> StreamchatError:
    cause = _causes(exc)[-1]
    return StreamchatError(f"unexpected error from {provider}: {type(cause).__name__}: {cause}",
                           hint="run with --debug for details")


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the chain of exceptions behind it, outermost first."""
    chain = [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and nxt not in chain:
        chain.append(nxt)
    return chain


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


class OutputClosed(Exception):
    """stdout was closed by the reader (`streamchat … | head -1`): stop quietly."""



def exit_code_for(result: TurnResult) -> ExitStatus:
    """The process exit code for how a turn ended (the CLI's edge of the one outcome)."""
    from streamchat import signals
    from streamchat.events import Outcome

    if result.outcome is Outcome.FAILED:
        return result.error.exit_code if result.error is not None else ExitStatus.ERROR
    if result.outcome is Outcome.OK:
        return ExitStatus.OK
    if result.outcome is Outcome.OUTPUT_CLOSED:
        return ExitStatus.OUTPUT_CLOSED
    return signals.exit_code(ExitStatus.INTERRUPTED)
