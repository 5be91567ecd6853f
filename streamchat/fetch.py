"""`-f URL`: a web page as text, without handing a redirect the keys to the local network.

A public page could redirect to `http://127.0.0.1:…` or `http://169.254.169.254/…` and have a
local service's answer sent to the model; a redirect that leaves the original host for a
private address is refused unless the original was private itself. Credentials in the URL
(`https://user:token@host/…`) are used for the fetch and appear nowhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from streamchat.errors import NetworkError, UsageError
from streamchat.ui import byte_size

URL_CAP = 2 * 1024 * 1024
MAX_REDIRECTS = 5

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def shown_url(url: str) -> str:
    """The URL without its user and password: the label shown, sent to the model and stored."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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


def fetch_url(url: str, *, timeout: float) -> str:
    """An http(s) page as text: HTML turned into Markdown-ish text, text and JSON as they are."""
    import httpx2

    label = shown_url(url)
    origin = urlsplit(url).hostname or ""
    origin_addresses: list[Address] | None = None

    def check_hop(request: httpx2.Request) -> None:
        """httpx calls this before each request, redirects included."""
        nonlocal origin_addresses
        target = request.url.host
        if target.lower() == origin.lower():
            return
        if origin_addresses is None:
            origin_addresses = addresses(origin)
        if redirect_refused(origin, origin_addresses, target, addresses(target)):
            raise NetworkError(f"{label} redirects to a private address ({target})",
                               hint="a public page may not lead to the local network; fetch that address directly")

    try:
        with httpx2.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                           event_hooks={"request": [check_hop]}) as client, \
                client.stream("GET", url, headers={"User-Agent": "streamchat"}) as response:
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
        raise NetworkError(f"{label} did not answer within {timeout:g} s",
                           hint="check the address or raise --timeout") from None
    except httpx2.HTTPError as exc:
        raise NetworkError(f"cannot fetch {label}: {type(exc).__name__}", hint="check the address and network") from None
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
