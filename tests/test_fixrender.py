"""Terminal Markdown shows the answer as the model wrote it (QA-9, QA-3): streamed through the sink
into a terminal emulator, as a person sees it."""

from __future__ import annotations

from answers import tokens
from terminal_emulator import Terminal, tty_env

from streamchat.events import TextDelta, TurnResult
from streamchat.render.code_blocks import code_blocks
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI


def shown(text: str, width: int = 120, chunk: int = 3) -> list[str]:
    """The rows a terminal shows after `text` streamed in pieces of `chunk` characters."""
    env, out, _err = tty_env()
    sink = MarkdownSink(env, UI(env), size=lambda: (width, 30), timer=False)
    sink.begin()
    for piece in tokens(text, chunk):
        sink.feed(TextDelta(piece))
    sink.end(TurnResult())
    term = Terminal(width, 30)
    term.feed(out.getvalue())
    return term.lines()


# -- QA-9: raw HTML is text

def test_html_looking_words_stay_in_the_line():
    text = "Use <br> for a break; in C++ write std::vector<int> v; #include <stdio.h> and a <details> block"
    assert shown(text) == [text]


def test_an_html_block_and_a_comment_are_shown_not_dropped():
    text = 'Intro\n\n<div align="center">\nInside the div\n</div>\n\nafter <!-- hidden comment --> end'
    lines = shown(text)
    assert lines[0] == "Intro"
    assert '<div align="center"> Inside the div </div>' in lines
    assert lines[-1] == "after <!-- hidden comment --> end"


def test_entities_and_autolinks_still_render():
    assert shown("a &amp; b, <https://a.b/c>") == ["a & b, https://a.b/c (https://a.b/c)"]


def test_a_fence_inside_an_html_block_is_listed_as_it_is_drawn():
    """code_blocks parses as the renderer does: the block drawn as code is the one /copy 1 takes."""
    text = "<div>\n```sh\necho hi\n```\n</div>"
    assert [(b.language, b.code) for b in code_blocks(text)] == [("sh", "echo hi\n")]
    assert "echo hi" in [line.strip() for line in shown(text)]


# -- QA-3: an image stays where it is in the answer, shown as links are

def test_an_image_keeps_its_place_and_shows_its_url():
    assert shown("para with ![im2](http://a/b.png) inline text") == ["para with im2 (http://a/b.png) inline text"]


def test_an_image_after_a_list_item_line_is_not_drawn_above_it():
    lines = [line.strip() for line in shown("- item [link](http://x.y)\n![img](http://evil/x.png)") if line.strip()]
    assert lines == ["• item link (http://x.y) img (http://evil/x.png)"]


def test_images_without_alt_in_links_and_by_reference():
    text = "a ![*em* b](u \"t\") ![](v) [![badge](i)](h) ![r][x]\n\n[x]: http://r/x.png"
    assert shown(text) == ["a em b (u) image (v) badge (i) (h) r (http://r/x.png)"]
