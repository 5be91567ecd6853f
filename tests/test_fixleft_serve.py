"""serve's leftovers from session 39's QA, in-process over ASGI: a 405 names the allowed methods."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

from test_fixqa2_serve import ask  # noqa: E402
from test_serve_policy import _app  # noqa: E402


def test_a_405_carries_an_allow_header():
    """The 405 handler dropped the exception's headers, so a wrong method got no `Allow` (RFC 9110 wants one)."""
    answer = ask(_app(), "DELETE", "/v1/chat/completions")
    assert answer.status_code == 405, answer.text
    assert answer.headers.get("allow") == "POST", answer.headers
    assert answer.json()["error"]["code"] == "http_error"
