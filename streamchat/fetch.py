"""`-f URL`: a web page as text, without handing a redirect the keys to the local network.

A public page could redirect to `http://127.0.0.1:…` or `http://169.254.169.254/…` and have a
local service's answer sent to the model; a redirect that leaves the original host for a
private address is refused unless the original was private itself. Credentials in the URL
(`https://user:token@host/…`) are used for the fetch and appear nowhere else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any

from streamchat.errors import NetworkError, UsageError, mask_query
from streamchat.ui import byte_size

URL_CAP = 2 * 1024 * 1024
MAX_REDIRECTS = 5

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def shown_url(url: str) -> str:
    """The URL without its user and password, and its credential-like query values as ***
    (`errors.mask_query`, which notices and logs go through too): the label shown, sent to the
    model and stored. Plain string work, so an address too broken to parse (`http://u:pw@[::1`)
    loses them too."""
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if not sep or "@" not in rest[:end]:
        return mask_query(url)
    return mask_query(f"{scheme}://{rest[:end].rpartition('@')[2]}{rest[end:]}")


def is_private(address: Address) -> bool:
    """Loopback, RFC 1918, link-local, CGNAT, unique-local, reserved…: anything not on the public
    internet (an IPv4 address written as IPv6, ::ffff:127.0.0.1, counts as the IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


def redirect_refused(origin: str, origin_addresses: list[Address], target: str,
                     target_addresses: list[Address]) -> bool:
    """Whether a redirect from host `origin` to host `target` must not be followed: it leaves the
    original host for a private address, and the original was not private (all of its addresses;
    a name that did not resolve counts as public). Pure, so every case is tested without DNS."""
    if target.lower() == origin.lower():
        return False
    if origin_addresses and all(is_private(a) for a in origin_addresses):
        return False
    return any(is_private(a) for a in target_addresses)


def addresses(host: str) -> list[Address]:
    """The addresses a host name stands for (an IP literal is itself; none when it does not resolve)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class _Hops:
    """The redirect policy for each request of one fetch. Before it is sent: the target's
    addresses by DNS (through a proxy, that is all there is to check). Then, for a connection
    made to the target itself, the address actually connected: a name that resolves public for
    the check and private for the connection (DNS rebinding) is cut before the request goes out."""

    def __init__(self, origin: str, label: str) -> None:
        self.origin, self.label = origin, label
        self._origin_addresses: list[Address] | None = None
        self._target, self._target_ascii, self._connecting = origin, "", ""

    def _refused(self, target_addresses: list[Address]) -> bool:
        if self._target.lower() == self.origin.lower():
            return False
        if self._origin_addresses is None:
            self._origin_addresses = addresses(self.origin)
        return redirect_refused(self.origin, self._origin_addresses, self._target, target_addresses)

    def _error(self) -> NetworkError:
        return NetworkError(f"{self.label} redirects to a private address ({self._target})",
                            hint="a public page may not lead to the local network; fetch that address directly")

    def check(self, target: str, target_ascii: str) -> None:
        self._target, self._target_ascii = target, target_ascii
        if self._refused(addresses(target)):
            raise self._error()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self._connecting = str(info.get("host", ""))
        elif event == "connection.connect_tcp.complete" and self._connecting == self._target_ascii:
            sock = info["return_value"].get_extra_info("socket")
            peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
            if self._refused([peer]):
                _cut(sock)
                raise self._error()


class _Deadline:
    """Cuts a fetch at `seconds` in all. httpx's timeouts are per read, so a server sending a
    byte a second (of its headers or its body) held `-f URL` forever. Each socket the fetch
    opens is registered through httpcore's `trace` extension; at the deadline they are shut
    down, which wakes the blocked read (its error, or a body cut short, is then the deadline's)."""

    def __init__(self, seconds: float) -> None:
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._started = False

    def start(self) -> None:
        """From the first request on (building the client, its TLS context, is not the server's time)."""
        if not self._started:
            self._started = True
            self._timer.start()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._sockets.append(sock)
            if self.expired.is_set():
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def fetch_url(url: str, *, timeout: float) -> str:
    """An http(s) page as text: HTML turned into Markdown-ish text, text and JSON as they are.
    The whole fetch, redirects included, gets `timeout` seconds, as each read does."""
    import httpx2

    label = shown_url(url)
    try:
        origin = httpx2.URL(url).host
    except httpx2.InvalidURL as exc:
        raise UsageError(f"{label} is not a valid URL ({exc})", hint="check the address given to -f") from None
    hops, deadline = _Hops(origin, label), _Deadline(timeout)

    def check_hop(request: httpx2.Request) -> None:
        """httpx calls this before each request, redirects included."""
        deadline.start()
        hops.check(request.url.host, request.url.raw_host.decode("ascii"))

    def trace(event: str, info: dict[str, Any]) -> None:
        hops.trace(event, info)
        deadline.trace(event, info)

    late = NetworkError(f"{label} did not arrive within {timeout:g} s", hint="check the address or raise --timeout")
    try:
        with deadline, \
                httpx2.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                              event_hooks={"request": [check_hop]}) as client, \
                client.stream("GET", url, headers={"User-Agent": "streamchat"},
                              extensions={"trace": trace}) as response:
            if response.status_code >= 400:
                raise NetworkError(f"{label} answered HTTP {response.status_code}", hint="check the address")
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not (kind.startswith("text/") or kind in ("application/json", "application/xhtml+xml", "")):
                raise UsageError(f"{label} is {kind}, not text or HTML", hint="download it and attach it with -a")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > URL_CAP:
                    raise UsageError(f"{label} is larger than {byte_size(URL_CAP)}", hint="pass a smaller page")
            charset = response.encoding or "utf-8"
    except httpx2.TooManyRedirects:
        raise NetworkError(f"{label} redirects more than {MAX_REDIRECTS} times", hint="check the address") from None
    except httpx2.TimeoutException:
        raise late from None
    except httpx2.HTTPError as exc:
        if deadline.expired.is_set():
            raise late from None
        raise NetworkError(f"cannot fetch {label}: {type(exc).__name__}", hint="check the address and network") from None
    if deadline.expired.is_set():  # a body without a length ends at the cut: it is not the page
        raise late
    text = bytes(data).decode(charset, errors="replace")
    if kind in ("text/html", "application/xhtml+xml") or (not kind and "<html" in text[:1000].lower()):
        return html_to_text(text)
    return text


def html_to_text(html: str) -> str:
    """Readable Markdown-ish text from HTML (html2text: pure Python, links kept, images dropped)."""
    import html2text

    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    return str(converter.handle(html)).strip()
