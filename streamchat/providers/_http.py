"""The lean transport: a streaming POST over the standard library's `http.client`, so a one-shot or
a REPL turn sends its request without importing an SDK.

Why: `import openai` was ~35 % of a one-shot (its `types` package alone ~330 ms), `import
anthropic` more, and the SDK's HTTP client loaded the TLS certificate bundle (~70 ms) even for an
`http://` URL (#34). What the SDK adds to a request is small and fixed: the URL (base URL + the
endpoint's path), the auth headers, a few headers from the environment, and the JSON body, which
streamchat builds itself (`_content.py`) and hands the SDK whole. So this module sends the same
request and the SDKs stay the reference: tests/test_lean_transport.py compares, at the fake server,
the bytes each path sends and the errors each raises.

Redirects are followed as httpx2 follows them for the SDKs (`HttpTransport._follow`).

`path_for` is the one rule for which path a provider takes; what the lean path does not cover
(proxies, `streamchat models`) goes through the SDK. Serve's asyncio requests take `_ahttp.py`, the
same request on asyncio.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urljoin, urlsplit, urlunsplit

from streamchat._version import __version__
from streamchat.config import ProviderConfig

ERROR_BODY_MAX = 1 << 20  # an error response's body is read up to this many bytes
REDIRECTS = (301, 302, 303, 307, 308)  # followed when they carry a Location, as the SDKs' httpx2 does
MAX_REDIRECTS = 20  # httpx2's: the 21st redirect is an error
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")  # the SDKs' httpx2 honours these (any case)
TRANSPORT_VAR = "STREAMCHAT_TRANSPORT"  # "sdk": every request through the official SDK
log = logging.getLogger("streamchat.http")  # --debug shows each request and its status, as the SDKs' loggers do


@dataclass(frozen=True)
class Wire:
    """What an SDK adds to a streaming request of its API: where it goes and how it authenticates."""

    path: str  # appended to the base URL
    default_base_url: str  # the SDK's, when neither the config nor its variable gives one

    def headers(self, key: str) -> dict[str, str]:
        raise NotImplementedError


class OpenAIWire(Wire):
    def headers(self, key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        for variable, name in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
            if os.environ.get(variable):  # the SDK reads them from the environment
                headers[name] = os.environ[variable]
        return headers


class AnthropicWire(Wire):
    def headers(self, key: str) -> dict[str, str]:
        # anthropic 2.x sends a key given to its constructor as a bearer token, and then reads no
        # ANTHROPIC_AUTH_TOKEN (explicit arguments are total); the API version is its constant's.
        return {"Authorization": f"Bearer {key}", "anthropic-version": "2026-10-21"}


WIRES: dict[str, Wire] = {
    "openai": OpenAIWire("/chat/completions", "https://api.openai.com/v1"),
    "anthropic": AnthropicWire("/v1/messages", "https://api.anthropic.com"),
}


def path_for(config: ProviderConfig, *, asyncio: bool = False) -> str:
    """"lean", "lean-async" or "sdk": which transport a provider's requests take (the one rule).

    The SDK's when asked for (STREAMCHAT_TRANSPORT=sdk); when a proxy variable is set (the SDK's
    httpx2 routes through it); when the base URL carries credentials or a query (httpx2 turns those
    into auth and parameters of its own). Otherwise the lean path: for serve's asyncio requests
    (`asyncio`) `_ahttp.py`'s, when httptools (serve's extra) is installed, else the SDK's.
    """
    if config.type not in WIRES or os.environ.get(TRANSPORT_VAR, "").lower() == "sdk":
        return "sdk"
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in PROXY_VARIABLES):
        return "sdk"
    base = config.effective_base_url()[0]
    if base is not None:
        parts = urlsplit(base)
        if parts.username is not None or parts.query or parts.scheme not in ("http", "https"):
            return "sdk"
    if asyncio:
        import importlib.util

        return "lean-async" if importlib.util.find_spec("httptools") is not None else "sdk"
    return "lean"


def wire_json(body: dict[str, Any]) -> bytes:
    """A request body as the SDKs serialize it (compact, UTF-8 as it is, no NaN)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def request_headers(headers: dict[str, str]) -> dict[str, str]:
    """What every lean request carries, on either transport: the JSON content type and accept, our
    User-Agent, then the wire's headers (`Wire.headers`)."""
    return {"Content-Type": "application/json", "Accept": "application/json",
            "User-Agent": f"streamchat/{__version__}", **headers}


def timeouts(timeout: float) -> tuple[float, float]:
    """Connect and read timeouts, as client_options gives the SDK's."""
    return min(timeout, 15.0), timeout


class HttpStatusError(Exception):
    """An error response, with what map_error reads from the SDKs' APIStatusError: `status_code`,
    `body` (the JSON, or the text), `response.headers` (Retry-After)."""

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, text: str) -> None:
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text or None
        super().__init__(f"Error code: {status_code} - {body}")  # the SDKs' wording
        self.status_code = status_code
        self.body = body
        self.headers = headers
        self.response = self  # errors.retry_after reads `response.headers`


class TooManyRedirects(Exception):
    """More than MAX_REDIRECTS redirects: named and worded as httpx2's, so the error shown is the same."""

    def __init__(self) -> None:
        super().__init__("Exceeded maximum allowed redirects.")


class StreamDropped(ConnectionError):
    """The HTTP exchange broke (a body cut mid-chunk, a bad status line): http.client's own
    exceptions are not OSErrors, and the error table reads transport faults by type."""


def _ssl_context() -> Any:
    """What httpx2 verifies with: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's bundle.
    Built only for an https URL (loading the bundle costs ~70 ms)."""
    import ssl

    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        import certifi

        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile or None, capath=capath or None)


class _HTTPConnection(http.client.HTTPConnection):
    """Connects within its `timeout`, then waits at most `read_timeout` for each byte."""

    read_timeout = 60.0

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """The same over TLS (its `connect` wraps the socket between the two)."""


class HttpTransport:
    """POSTs to one URL over pooled keep-alive connections (a REPL's next turn reuses the last
    one; the Python API may run turns on several threads at once, each on a connection of its own)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._target = parts.path or "/"
        self._headers = request_headers(headers)
        self._timeouts = timeouts(timeout)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._context: Any = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (True: it served a request before), or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            if self._https and self._context is None:
                self._context = _ssl_context()
        connect, read = self._timeouts
        conn = (_HTTPSConnection(self._host, self._port, timeout=connect, context=self._context) if self._https
                else _HTTPConnection(self._host, self._port, timeout=connect))
        conn.read_timeout = read
        return conn, False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        if conn.sock is not None:
            with self._lock:
                self._idle.append(conn)

    @contextlib.contextmanager
    def post(self, body: bytes) -> Iterator[HttpResponse]:
        """The response to `body`, once its headers arrived (redirects followed); HttpStatusError
        for a non-2xx answer. Leaving the block closes the response; its connection is kept only if
        it is the pool's and its body was read to the end."""
        log.debug("POST %s (%d bytes)", self.url, len(body))
        conn, sock, response = self._send(body)
        log.debug("HTTP %d %s", response.status, response.reason)
        pooled = True
        if response.status in REDIRECTS and response.getheader("Location") is not None:
            pooled = False
            status, location = response.status, response.getheader("Location") or ""
            _discard(response)
            self._done_with(conn, response, pooled=True)  # read to its end: the connection goes back to the pool
            conn, sock, response = self._follow(status, location, body)
        reply = HttpResponse(sock, response)
        try:
            if not 200 <= response.status < 300:
                raise HttpStatusError(response.status, response.headers, reply.read_error())
            yield reply
        finally:
            self._done_with(conn, response, pooled=pooled)

    def _done_with(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, *, pooled: bool) -> None:
        if pooled and response.isclosed() and not response.will_close:
            self._release(conn)
        else:
            conn.close()

    def _follow(self, status: int, location: str, body: bytes
                ) -> tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse]:
        """Follow redirects as httpx2 does for the SDKs (`redirected`); the 21st redirect is
        TooManyRedirects. Each hop goes on a connection of its own, closed after it (a redirect is
        rare; the pool serves the base URL)."""
        url, method, headers = self.url, "POST", dict(self._headers)
        payload: bytes | None = body
        for _hop in range(MAX_REDIRECTS):
            url, method, payload = redirected(status, url, location, method, payload, headers)
            log.debug("%s %s (redirected, HTTP %d)", method, url, status)
            conn, sock, response = self._send_once(url, method, payload, headers)
            log.debug("HTTP %d %s", response.status, response.reason)
            if response.status not in REDIRECTS or response.getheader("Location") is None:
                return conn, sock, response
            status, location = response.status, response.getheader("Location") or ""
            _discard(response)
            conn.close()
        raise TooManyRedirects

    def _send_once(self, url: str, method: str, body: bytes | None, headers: dict[str, str]
                   ) -> tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse]:
        """One request on a new connection to `url`'s host (a redirect's hop)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise StreamDropped(f"a redirect to an unsupported URL: {parts.scheme}:…")
        connect, read = self._timeouts
        if parts.scheme == "https":
            with self._lock:
                if self._context is None:
                    self._context = _ssl_context()
            conn: http.client.HTTPConnection = _HTTPSConnection(parts.hostname or "", parts.port, timeout=connect,
                                                                context=self._context)
        else:
            conn = _HTTPConnection(parts.hostname or "", parts.port, timeout=connect)
        conn.read_timeout = read  # type: ignore[attr-defined]
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            conn.request(method, target, body, headers)
            return conn, conn.sock, conn.getresponse()
        except http.client.HTTPException as exc:
            conn.close()
            raise StreamDropped(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.close()
            raise

    def _send(self, body: bytes) -> tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse]:
        """The connection, its socket (a response that closes the connection takes it over) and the response."""
        while True:
            conn, reused = self._connection()
            try:
                conn.request("POST", self._target, body, self._headers)
                sock = conn.sock
                return conn, sock, conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if not reused:  # a pooled connection the server closed while idle: once more, on a new one
                    raise StreamDropped(str(exc) or "the server closed the connection") from exc
            except http.client.HTTPException as exc:
                conn.close()
                raise StreamDropped(str(exc) or type(exc).__name__) from exc
            except BaseException:
                conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def redirected(status: int, url: str, location: str, method: str, body: bytes | None, headers: dict[str, str]
               ) -> tuple[str, str, bytes | None]:
    """A redirect's next request, as httpx2 makes it for the SDKs (both lean transports follow it):
    the Location is relative to the URL that answered; a 301, 302 or 303 turns a POST into a GET
    without a body; `headers` loses the key (Authorization) for another origin, unless the redirect
    only upgrades http to https on the same host. The URL, method and body to send next."""
    target = _sendable(urljoin(url, location), location)
    if status in (301, 302, 303) and method == "POST":
        method, body = "GET", None
        headers.pop("Content-Length", None)
    if _origin(target) != _origin(url) and not _https_upgrade(url, target):
        headers.pop("Authorization", None)
    return target, method, body


_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))  # printable ASCII but space: sent as it is (and `%`, an escape)


def _sendable(target: str, location: str) -> str:
    """A redirect's URL as it can go in a request line, on both transports, as httpx2 makes it for the
    SDKs: a control character in the Location refuses it; a space or non-ASCII in its path, query or
    fragment is percent-encoded (UTF-8). Before, http.client refused such a URL (an internal error)
    and serve's reader wrote it into the request line as it was (a 400, or a request split in two)."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in location):
        raise StreamDropped("a redirect to a URL with control characters")
    parts = _idna_host(urlsplit(target))
    return urlunsplit(parts._replace(path=quote(parts.path, safe=_PRINTABLE), query=quote(parts.query, safe=_PRINTABLE),
                                     fragment=quote(parts.fragment, safe=_PRINTABLE)))


def a_label(host: str) -> str:
    """A non-ASCII host name as its IDNA 2008 A-label, as httpx2 encodes it for the SDKs and browsers
    send it in `Origin` (lower-cased, then the idna package); ValueError for a name IDNA refuses.
    Imports idna only when called: its tables cost a one-shot's start nothing otherwise."""
    import idna

    try:
        return idna.encode(host.lower()).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from None


def _idna_host(parts: SplitResult) -> SplitResult:
    """A redirect's non-ASCII host as its A-label (`a_label`): http.client would resolve it by
    Python's IDNA 2003 codec (straße → strasse, another host) and serve's reader wrote it raw into
    its Host header. A name IDNA refuses is refused as httpx2 refuses it."""
    host = parts.hostname
    if host is None or host.isascii():
        return parts
    try:
        encoded = a_label(host)
    except ValueError:
        raise StreamDropped("a redirect to an invalid host name") from None
    userinfo, at, hostport = parts.netloc.rpartition("@")
    _name, colon, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return parts._replace(netloc=f"{userinfo}{at}{encoded}{colon}{port}")


def _discard(response: http.client.HTTPResponse) -> None:
    """A redirect's own body, read as httpx2 reads it (and so its connection can serve again)."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        response.read(ERROR_BODY_MAX)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _https_upgrade(old: str, new: str) -> bool:
    """httpx2's exception to dropping the key: http://host(:80) to https://host(:443)."""
    (scheme, host, port), (new_scheme, new_host, new_port) = _origin(old), _origin(new)
    return host == new_host and (scheme, port, new_scheme, new_port) == ("http", 80, "https", 443)


class HttpResponse:
    """A streaming response: its body as text chunks, and `cut` for a cancel from another thread."""

    def __init__(self, sock: socket.socket, response: http.client.HTTPResponse) -> None:
        self._sock, self._response = sock, response
        self.headers = response.headers

    @property
    def is_closed(self) -> bool:
        return self._response.isclosed()

    def iter_text(self) -> Iterator[str]:
        """The body as UTF-8 text, each piece as soon as it arrived."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            try:
                data = self._response.read1(65536)
            except http.client.HTTPException as exc:  # the body cut mid-chunk
                raise StreamDropped(str(exc) or type(exc).__name__) from exc
            if not data:
                break
            text = decoder.decode(data)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def drain(self, chunks: Iterator[str], seconds: float) -> None:
        """Read what is left of the body from `chunks` (this response's iter_text), so the connection
        goes back to the pool, for `seconds` at most: the socket's timeout bounds each read, the
        deadline all of them; then the connection is dropped. A timer thread did this for each turn."""
        deadline = time.monotonic() + seconds
        before = self._sock.gettimeout()
        try:
            while (left := deadline - time.monotonic()) > 0:
                self._sock.settimeout(left)
                next(chunks)
        except Exception:  # StopIteration (the end), a timeout, or a broken body: dropped unless it ended
            pass
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(before)

    def read_error(self) -> str:
        try:
            return self._response.read(ERROR_BODY_MAX).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            return ""

    def cut(self) -> None:
        """Shut the socket down: a read blocked on it in another thread returns at once."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
