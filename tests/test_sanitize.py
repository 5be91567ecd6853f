"""The sanitizer on bidirectional controls (#35.16): shown as <U+XXXX>, never passed to the terminal."""

from __future__ import annotations

import sys

import pytest
from fakeserver import Script
from test_tools import MCP_SERVER, env_with, root  # noqa: F401 (root is a fixture)

from streamchat.render.sanitize import BIDI, sanitize

RLO = "\u202e"


@pytest.mark.parametrize("code", BIDI)
def test_every_bidi_control_is_shown_escaped(code):
    assert sanitize(f"a{chr(code)}b") == f"a<U+{code:04X}>b"


def test_the_trojan_source_controls_are_all_covered():
    overrides_embeddings_isolates_marks = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
                                           0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C}
    assert overrides_embeddings_isolates_marks == set(BIDI)


def test_right_to_left_text_and_emoji_are_left_alone():
    text = "שלום · مرحبا · 👩‍💻 · café"  # letters carry their own direction; ZWJ joins the emoji
    assert sanitize(text) == text


def test_a_tool_call_line_shows_bidi_controls_escaped(invoke, home, server, root):  # noqa: F811
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n')
    server.script("t", Script(chunks=["ok"], tool_calls=[("c1", "read_file", {"path": f"{RLO}yp.a"})]))
    r = invoke("-m", "openai:t", "--tools", "files", "q", env=env)  # no terminal: shown, refused
    shown = ('→ files:read_file(path="<U+202E>yp.a")', '→ files:read_file(path="\\u202eyp.a")')  # escaped either way
    assert RLO not in r.stderr and any(line in r.stderr for line in shown), r.stderr
