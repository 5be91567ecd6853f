"""Notices quote others' words — sanitized like error lines.

A server answering 503 with `down \\x1b]0;PWN\\x07 \\x1b[2J` got its escape sequences onto the
terminal twice through the retry lines (`… — retrying in 0.6 s (1/2)`), though the final error line
was sanitized: only `UI.error` sanitized, and notices carry a server's error, a route's failure, a
compaction's reason.
"""

from __future__ import annotations

from streamchat.exit_status import ExitStatus


def test_retry_notices_quoting_a_servers_error_are_sanitized(invoke, server):
    server.script("down", status=503, error_type="server_error", error_message="down \x1b]0;PWN\x07 \x1b[2J now",
                  headers={"Retry-After": "0"})  # the two retries at once, not ~1.5 s of backoff
    r = invoke("-m", "openai:down", "q")
    assert r.code == ExitStatus.SERVER
    assert r.stderr.count("retrying in") == 2, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    assert "down ␛]0;PWN␇ ␛[2J now" in r.stderr
