"""Standard input edge cases and the sanitizer's properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from terminal_emulator import tty_env

from streamchat.events import TextDelta, TurnResult
from streamchat.render.sanitize import sanitize
from streamchat.sinks.plain import PlainSink
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI


def test_binary_stdin_is_refused(invoke, server):
    r = invoke("-m", "openai:echo", stdin=b"\x00\x01binary")
    assert r.code == 2 and "binary" in r.stderr and "Traceback" not in r.stderr


def test_invalid_utf8_stdin_is_refused(invoke, server):
    r = invoke("-m", "openai:echo", stdin=b"caf\xe9 latin-1")
    assert r.code == 2 and "not valid UTF-8 (byte 3)" in r.stderr and "iconv" in r.stderr


def test_arguments_and_files_that_are_not_utf8_are_refused_like_stdin(run, server, home):
    """argv bytes that are not UTF-8 reach Python as lone surrogates: the turn failed as "internal error:
    UnicodeEncodeError … report it", exit 1. A latin-1 file given with -f was called "a binary file"
    with a hint to use -a. Each now says what is not UTF-8 and where, exit 2, nothing sent."""
    for args, what in (([b"hi \xff there"], "the prompt is not valid UTF-8 (byte 3)"),
                       ([b"-s", b"sys \xfe", b"hi"], "--system is not valid UTF-8 (byte 4)"),
                       ([b"-p", b"x=\xe9", b"hi"], "-p is not valid UTF-8 (byte 2)")):
        r = run("-m", "openai:echo", *args)
        assert r.code == 2 and what in r.stderr and "LANG" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    latin = home / "notes.txt"
    latin.write_bytes(b"caf\xe9 au lait\n")
    r = run("-m", "openai:echo", "-f", str(latin), "hi")
    assert r.code == 2 and f"{latin} is not valid UTF-8 (byte 3)" in r.stderr and "iconv -f latin1" in r.stderr
    binary = home / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02")
    r = run("-m", "openai:echo", "-f", str(binary), "hi")
    assert r.code == 2 and "is a binary file" in r.stderr
    assert not server.requests


def test_oversized_stdin_is_refused(invoke, server, home):
    cfg = home / "small.toml"
    cfg.write_text("max_input_bytes = 1000\n")
    r = invoke("-m", "openai:echo", "--config", str(cfg), stdin=b"x" * 2000)
    assert r.code == 2 and "larger than 1000 bytes" in r.stderr
    assert len(server.requests) == 0


def test_piped_output_is_raw_unless_sanitize(invoke, server):
    evil = "a\x1b]0;title\x07b\x1b[2Jc"
    server.script("m", chunks=[evil])
    assert invoke("-m", "openai:m", "--raw", "q").out == evil
    assert invoke("-m", "openai:m", "--sanitize", "q").out == sanitize(evil) + "\n"
    assert "\x1b" not in sanitize(evil) and "\x07" not in sanitize(evil)


FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\d*[ABCJK]|\x1b\[2K|\x1b\[\?(2026|25)[hl]|\r")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200), st.integers(1, 9))
@example(text="**rm** \u202etxt.exe\u202c `x\u2066y\u2069` \u200f", size=3)  # bidi controls (#35.16)
def test_no_text_can_make_the_terminal_sinks_emit_controls(text, size):
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    env, out, _ = tty_env()
    sink = PlainSink(env, UI(env), sanitize=True)
    for piece in pieces:
        sink.feed(TextDelta(piece))
    assert not FORBIDDEN.search(out.getvalue().replace("\n", "").replace("\t", ""))
    env, out, _ = tty_env()
    md = MarkdownSink(env, UI(env), size=lambda: (60, 12), timer=False)
    md.begin()
    for piece in pieces:
        md.feed(TextDelta(piece))
    md.end(TurnResult())
    leftover = OWN.sub("", out.getvalue()).replace("\n", "").replace("\t", "")
    assert not FORBIDDEN.search(leftover), repr(leftover)


_PROVIDERS: dict[str, object] = {}


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60),
       st.integers(1, 7))
@example(text="\x85 \u2028 \u2029 \r\n", split=1)  # line breaks to str.splitlines, not to SSE
def test_incremental_utf8_over_any_chunking_equals_whole(_server_instance, text, split):
    """Bytes split anywhere on the wire (mid-character too) decode to exactly the sent text."""
    from fakeserver import Script

    from streamchat.config import ProviderConfig
    from streamchat.events import Message
    from streamchat.providers.base import ChatRequest
    from streamchat.providers.openai import OpenAIProvider

    _server_instance.script("prop", Script(chunks=[text[: len(text) // 2], text[len(text) // 2 :]], byte_split=split))
    if _server_instance.url not in _PROVIDERS:
        _PROVIDERS[_server_instance.url] = OpenAIProvider(
            ProviderConfig("p", "openai", base_url=f"{_server_instance.url}/v1", api_key="k"))
    provider = _PROVIDERS[_server_instance.url]
    got = "".join(e.text for e in provider.stream(ChatRequest("prop", (Message("user", "q"),)))
                  if isinstance(e, TextDelta))
    assert got == text


def test_stderr_colors_follow_no_color_and_force_color(invoke, server, home):
    from conftest import base_env

    server.script("m", status=500)
    forced = invoke("-m", "openai:m", "--no-retry", "q", env=base_env(home, server, FORCE_COLOR="1"))
    assert "\x1b[" in forced.stderr and forced.code == 5
    plain = invoke("-m", "openai:m", "--no-retry", "q", env=base_env(home, server))
    assert "\x1b[" not in plain.stderr  # not a terminal
    both = invoke("-m", "openai:m", "--no-retry", "q", env=base_env(home, server, FORCE_COLOR="1", NO_COLOR="1"))
    assert "\x1b[" in both.stderr  # FORCE_COLOR wins, as the FORCE_COLOR convention says
