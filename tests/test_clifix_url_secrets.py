"""`-f 'https://host/x?token=SECRET'`: a credential in a URL's query is used for the fetch, but not
shown in the notice, sent to the model as the source's name, or stored in the log (QA-20), as
user:password in a URL already was not. One function (`streamchat.errors.mask_url`) redacts both."""

from __future__ import annotations

import pytest
from localhttp import Quiet, local_http

from streamchat.errors import mask_url, redact
from streamchat.fetch import shown_url


class _Echo(Quiet):
    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.asked.append(self.path)
        self.reply(*((404, b"no") if self.path.startswith("/missing") else (200, b"the page body")))


@pytest.fixture
def site():
    with local_http(_Echo) as url:
        yield url


def test_a_query_token_is_used_but_not_shown_sent_or_stored(invoke, server, site, home):
    url = f"{site}/doc?page=2&access_token=s3cretTOKEN&X-Amz-Signature=abcdef0123"
    r = invoke("-m", "openai:echo", "-f", url, "q")
    assert r.code == 0, r.stderr
    assert "/doc?page=2&access_token=s3cretTOKEN&X-Amz-Signature=abcdef0123" in _Echo.asked  # the fetch has it
    content = server.last_messages()[-1]["content"]
    shown = f"{site}/doc?page=2&access_token=***&X-Amz-Signature=***"
    assert f'<source name="{shown}">\nthe page body\n</source>' in content
    assert f"included: {shown}" in r.stderr
    stored = b"".join(p.read_bytes() for p in home.glob("log.db*")).decode("utf-8", "replace")
    assert "the page body" in stored
    for where in (r.stderr, content, stored):
        assert "s3cretTOKEN" not in where and "abcdef0123" not in where
    r = invoke("-m", "openai:echo", "-f", f"{site}/missing?api_key=s3cretTOKEN", "q")
    assert r.code == 6 and "HTTP 404" in r.stderr and "api_key=***" in r.stderr and "s3cretTOKEN" not in r.stderr


@pytest.mark.parametrize("url,shown", [
    ("https://h/x?token=a&key=b&apikey=c&api_key=d&sig=e", "https://h/x?token=***&key=***&apikey=***&api_key=***&sig=***"),
    ("https://h/x?signature=a&password=b&secret=c&auth=d#token=x", "https://h/x?signature=***&password=***&secret=***&auth=***#token=x"),
    ("https://h/x?apiKey=a&client_secret=b&X-Goog-Credential=c", "https://h/x?apiKey=***&client_secret=***&X-Goog-Credential=***"),
    ("https://h/x?q=monkey&keyword=token&hotkey=1&sort=key", "https://h/x?q=monkey&keyword=token&hotkey=1&sort=key"),
    ("https://u:pw@h/x?token=", "https://h/x?token="),
    ("https://h/search?TOKEN=a;auth=b", "https://h/search?TOKEN=***;auth=***"),
])
def test_which_query_values_are_redacted(url, shown):
    assert shown_url(url) == shown


def test_notices_and_logs_redact_a_query_token_inside_any_text():
    line = "cannot fetch https://h/x?a=1&token=SECRET1234: ConnectError (see http://h/y?sig=zz)"
    assert mask_url(line) == "cannot fetch https://h/x?a=1&token=***: ConnectError (see http://h/y?sig=***)"
    assert redact("https://u:p@h/?key=abc") == "https://***@h/?key=***"
    assert redact("a plain line, token=abc, no URL") == "a plain line, token=abc, no URL"
