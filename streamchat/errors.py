"""Error hierarchy, exit codes, and the one place that maps SDK/transport faults onto them.

Exit codes (documented in README):
0 ok · 2 usage · 3 configuration or authentication · 4 bad request or unknown model ·
5 rate limited, overloaded, server or protocol error · 6 network failure or timeout ·
130 interrupted.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_REQUEST = 4
EXIT_SERVER = 5
EXIT_NETWORK = 6
EXIT_INTERRUPTED = 130


class StreamchatError(Exception):
    """An error the user can act on: ``str(err)`` is the one line shown on stderr."""

    exit_code = 1
    code = "error"
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retry_after = retry_after

    def __str__(self) -> str:
        # Upstream messages sometimes echo the key ("Incorrect API key provided: sk-…"): never show it.
        return redact(f"{self.message} — {self.hint}" if self.hint else self.message)


class UsageError(StreamchatError):
    exit_code = EXIT_USAGE
    code = "usage"


class ConfigError(StreamchatError):
    exit_code = EXIT_CONFIG
    code = "config"


class AuthError(StreamchatError):
    exit_code = EXIT_CONFIG
    code = "auth"


class BadRequestError(StreamchatError):
    exit_code = EXIT_REQUEST
    code = "bad_request"


class ModelNotFoundError(BadRequestError):
    code = "model_not_found"


class ContextOverflowError(BadRequestError):
    code = "context_length"


class RateLimitError(StreamchatError):
    exit_code = EXIT_SERVER
    code = "rate_limited"
    retryable = True


class ServerError(StreamchatError):
    exit_code = EXIT_SERVER
    code = "server_error"
    retryable = True


class OverloadedError(ServerError):
    code = "overloaded"


class ProtocolError(StreamchatError):
    """The server sent something that is not a valid stream (bad JSON, cut stream)."""

    exit_code = EXIT_SERVER
    code = "protocol_error"


class IncompleteStreamError(ProtocolError):
    code = "incomplete"


class NetworkError(StreamchatError):
    exit_code = EXIT_NETWORK
    code = "network"
    retryable = True


class TimeoutError_(NetworkError):
    code = "timeout"


_KEYLIKE = re.compile(r"(\bsk-[A-Za-z0-9_\-]{6,}|\bBearer\s+\S+)")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys from text that may reach a terminal, a log or the store."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _body_message(exc: BaseException) -> tuple[str | None, str | None]:
    """(message, error type) out of an SDK exception body, whatever its shape."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message")
            return (str(msg) if msg else None, err.get("type") or err.get("code"))
    return None, None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_status(status: int, detail: str | None, err_type: str | None, *, model: str, provider: str,
                retry_after: float | None = None) -> StreamchatError:
    """Map an HTTP status (or a status-like error event) to our error with a fix."""
    detail = f": {detail}" if detail else ""
    lowered = (detail + " " + (err_type or "")).lower()
    if err_type == "overloaded_error" or status == 529:
        return OverloadedError(f"{provider} is overloaded (HTTP {status}){detail}",
                               hint="try again in a moment", retry_after=retry_after)
    if status == 401:
        return AuthError(f"{provider} rejected the API key (HTTP 401){detail}",
                         hint=f"check the key for provider '{provider}' (streamchat config show)")
    if status == 403:
        return AuthError(f"{provider} denied access (HTTP 403){detail}",
                         hint="check that the key may use this model")
    if status == 404:
        return ModelNotFoundError(f"{provider} does not know model '{model}' (HTTP 404){detail}",
                                  hint="run `streamchat models` to list available models")
    if status == 429 or err_type == "rate_limit_error":
        wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        return RateLimitError(f"{provider} rate limit reached (HTTP 429){wait}{detail}",
                              hint="wait and retry, or use another model", retry_after=retry_after)
    if status in (400, 413, 422):
        if "context" in lowered or "too long" in lowered or "maximum" in lowered:
            return ContextOverflowError(f"the prompt is too long for '{model}' (HTTP {status}){detail}",
                                        hint="shorten the input or use a model with a larger context")
        return BadRequestError(f"{provider} refused the request (HTTP {status}){detail}",
                               hint="check the options and model name")
    if status == 408:
        return NetworkError(f"{provider} timed out the request (HTTP 408){detail}", hint="try again")
    if status >= 500 or status == 409:
        return ServerError(f"{provider} server error (HTTP {status}){detail}",
                           hint="try again later", retry_after=retry_after)
    return BadRequestError(f"{provider} answered HTTP {status}{detail}")


def map_exception(exc: BaseException, *, provider: str, model: str, base_url: str | None = None,
                  started: bool = False) -> StreamchatError:
    """Turn any SDK or transport exception into a StreamchatError.

    The SDKs raise different things for the same fault (the Anthropic stream lets raw
    httpx2 errors through), so this matches on class names across both.
    """
    if isinstance(exc, StreamchatError):
        return exc
    names = _names(exc)
    where = f" at {base_url}" if base_url else ""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and "APIStatusError" in names:
        msg, etype = _body_message(exc)
        return from_status(status, msg, etype, model=model, provider=provider, retry_after=_retry_after(exc))
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout",
                "PoolTimeout", "TimeoutError"}:
        if started:
            return TimeoutError_(f"the {provider} stream stalled mid-answer{where}",
                                 hint="the partial answer was kept; retry or raise `timeout`")
        return TimeoutError_(f"no response from {provider}{where} within the timeout",
                             hint="check the server, or raise --timeout")
    if "JSONDecodeError" in names or "APIResponseValidationError" in names:
        return ProtocolError(f"{provider} sent a malformed stream chunk", hint="the server or proxy is misbehaving; retry")
    cause = _root_cause(exc)
    text = f"{type(cause).__name__}: {cause}"
    if names & {"APIConnectionError", "ConnectError", "RemoteProtocolError", "ReadError", "NetworkError",
                "ProxyError", "TransportError", "ConnectionError", "OSError"}:
        lowered = text.lower()
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            return NetworkError(f"TLS error talking to {provider}{where}: {_short(cause)}",
                                hint="check the server certificate, SSL_CERT_FILE or proxy settings")
        if "proxy" in lowered:
            return NetworkError(f"proxy error talking to {provider}{where}: {_short(cause)}",
                                hint="check HTTPS_PROXY/HTTP_PROXY")
        if "name or service not known" in lowered or "nodename" in lowered or "getaddrinfo" in lowered \
                or "name resolution" in lowered:
            return NetworkError(f"cannot resolve the host of {provider}{where}", hint="check base_url and DNS")
        if "refused" in lowered:
            return NetworkError(f"connection refused by {provider}{where}",
                                hint="is the server running? check base_url")
        if started:
            return NetworkError(f"the connection to {provider} dropped mid-answer",
                                hint="the partial answer was kept; retry")
        return NetworkError(f"cannot reach {provider}{where}: {_short(cause)}", hint="check the network and base_url")
    if "APIError" in names:  # an error event inside an HTTP 200 stream
        msg, etype = _body_message(exc)
        msg = msg or str(exc)
        if etype == "overloaded_error":
            return OverloadedError(f"{provider} is overloaded: {msg}", hint="try again in a moment")
        if etype in ("rate_limit_error", "rate_limit_exceeded"):
            return RateLimitError(f"{provider} rate limit reached: {msg}", hint="wait and retry")
        return ServerError(f"{provider} reported an error mid-stream: {msg}", hint="retry")
    return StreamchatError(f"unexpected error from {provider}: {text}", hint="run with --debug for details")


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while (exc.__cause__ or exc.__context__) and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


class OutputClosed(Exception):
    """stdout was closed by the reader (`streamchat … | head -1`): stop quietly."""

    exit_code = 141
