"""serve's log reaches the operator's terminal: no client's or upstream's escape sequence gets through (QA-7)."""

from __future__ import annotations

import logging

import pytest

from streamchat import logs
from streamchat.config import parse_settings
from streamchat.serve.policy import ModelPolicy, Refused

EVIL = "openai:\x1b]0;PWNED\x07\x1b[2Jx"


@pytest.fixture
def configured():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_show_escape_sequences_as_pictures(configured, capsys):
    """A model name the client chose and an upstream's error text were logged raw: the terminal's
    title changed and its screen was cleared."""
    logs.configure(debug=False, secrets=("sk-secret-0123",))
    log = logging.getLogger("streamchat.serve")
    log.warning("a turn on %s failed: %s", EVIL, "bad \x1b[31mthing\x1b[0m (key sk-secret-0123)\r")
    try:
        raise ValueError("\x9b2J in a traceback")
    except ValueError:
        log.exception("failed \x07")
    err = capsys.readouterr().err
    assert not any(c in err for c in "\x1b\x07\x9b\r"), repr(err)
    assert "a turn on openai:␛]0;PWNED␇␛[2Jx failed: bad ␛[31mthing␛[0m (key ***)\\r\n" in err
    assert "ValueError: \ufffd2J in a traceback" in err and "failed ␇" in err


def test_allow_model_globs_do_not_match_names_with_control_characters():
    policy = ModelPolicy(parse_settings({}), "openai:echo", patterns=("openai:*", "*"))
    assert policy.choose("openai:gpt-x") == "openai:gpt-x"
    for name in (EVIL, "openai:a\u202eb", "openai:a\u2028b", "openai:a\x85b"):
        with pytest.raises(Refused) as refused:
            policy.choose(name)
        assert refused.value.status == 400 and refused.value.code == "invalid_model"


def test_a_line_break_in_a_message_cannot_forge_a_log_line(configured, capsys):
    """Review 8: sanitize kept LF, so an upstream's error text with "\\n" wrote a second line that
    looked like the server's own. A message's CR/LF are shown as \\r \\n; a traceback keeps its lines."""
    logs.configure(debug=False, secrets=())
    log = logging.getLogger("streamchat.serve")
    log.warning("upstream said: %s", "busy\r\nERROR: streamchat.serve: token accepted for admin")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed:\n%s", "twice")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "WARNING: streamchat.serve: upstream said: busy\\r\\nERROR: streamchat.serve: token accepted for admin"
    assert lines[1] == "ERROR: streamchat.serve: failed:\\ntwice" and lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom" and len(lines) > 4
