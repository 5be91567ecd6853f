"""A small HTTP server on 127.0.0.1 for the tests that need a page, a schema or a raw SSE body
served as it is (the fake LLM server, tests/fakeserver.py, is for chat APIs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Quiet(BaseHTTPRequestHandler):
    """A handler that logs nothing to stderr and answers through `reply`."""

    def reply(self, status: int, body: bytes = b"", content_type: str | None = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        """One whole response: `status`, `content_type` (None: no such header), `headers`, `body`."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def local_http(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1 while the block runs; yields `http://HOST:PORT`.

    It polls for its shutdown every 50 ms: `serve_forever`'s default, 0.5 s, was half a second of
    every test's teardown."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
