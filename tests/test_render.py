"""The live Markdown sink, replayed into a terminal emulator with scrollback."""

from __future__ import annotations

import pytest
from answers import answer_of_size, sample_answer, tokens
from terminal_emulator import ANSI, Terminal, plain, tty_env

from streamchat.events import Outcome, ReasoningDelta, TextDelta, TurnResult
from streamchat.render.markdown_stream import LineRenderer, render_static
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI

TALL_CODE = "Intro paragraph.\n\n```python\n" + "\n".join(f"x_{i} = {i} * 2  # line {i}" for i in range(60)) + \
    "\n```\n\nAfter the code.\n"


def replay(text: str, width: int, height: int, *, chunk: int = 4, resize_at: int | None = None,
           new_size: tuple[int, int] | None = None, env_extra: dict[str, str] | None = None, reflow: bool = False,
           step: float = 0.002):
    """Feed `text` in pieces of `chunk` characters, `step` simulated seconds apart; (terminal, bytes)."""
    env, out, _err = tty_env(**(env_extra if env_extra is not None else {"XTERM_VERSION": "pyte"}))
    size = [(width, height)]
    clock = [0.0]
    term = Terminal(width, height)
    sink = MarkdownSink(env, UI(env), size=lambda: size[0], timer=False, clock=lambda: clock[0])
    sink.begin()
    pieces = tokens(text, chunk)
    for i, piece in enumerate(pieces):
        if resize_at is not None and i == resize_at:
            term.feed(out.getvalue())
            out.seek(0)
            out.truncate()
            size[0] = new_size
            term.resize(*new_size, reflow=reflow)
            sink.resize(*new_size)
        sink.feed(TextDelta(piece))
        clock[0] += step
    sink.end(TurnResult())
    term.feed(out.getvalue())
    return term, out.getvalue()


def expected(text: str, width: int) -> list[str]:
    return plain(render_static(text, width, LineRenderer(color_system=None)))


@pytest.mark.parametrize("width,height", [(80, 24), (120, 10)])
@pytest.mark.parametrize("text", [sample_answer(0) + sample_answer(1), TALL_CODE], ids=["mixed", "tall-code"])
def test_scrollback_equals_static_render(text, width, height):
    term, _ = replay(text, width, height)
    assert term.lines() == expected(text, width)


def test_one_token_per_character_and_large_chunks():
    text = sample_answer(3)
    for chunk in (1, 50):
        term, _ = replay(text, 80, 24, chunk=chunk)
        assert term.lines() == expected(text, 80)


@pytest.mark.parametrize("new_width", [60, 130])
def test_resize_mid_stream_xterm_truncating(new_width):
    text = "Opening paragraph " + "lorem ipsum " * 40 + "\n"
    term, _ = replay(text, 100, 20, resize_at=60, new_size=(new_width, 20))
    assert term.lines() == expected(text, new_width)


@pytest.mark.parametrize("new_width", [45, 60, 130])
def test_resize_mid_stream_reflowing_terminal(new_width):
    """tmux, VTE, kitty… re-wrap the old live rows: all of them are erased, none left above."""
    text = "Opening paragraph " + "lorem ipsum " * 40 + "\n\n```python\nx = 1\n"
    term, _ = replay(text, 100, 30, resize_at=70, new_size=(new_width, 30), env_extra={}, reflow=True)
    assert term.lines() == expected(text, new_width)


def test_live_region_never_taller_than_screen():
    env, out, _ = tty_env()
    clock = [0.0]
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 10), timer=False, clock=lambda: clock[0])
    sink.begin()
    for piece in tokens(TALL_CODE, 5):
        sink.feed(TextDelta(piece))
        clock[0] += 0.05
        assert sink.region.height <= 8
    sink.end(TurnResult())


def test_repaints_are_throttled_not_per_token():
    env, out, _ = tty_env()
    clock = [0.0]
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False, clock=lambda: clock[0])
    sink.begin()
    paints = 0
    original = sink.region.paint

    def counting(commit, live, width):
        nonlocal paints
        paints += 1
        original(commit, live, width)

    sink.region.paint = counting
    for piece in tokens(sample_answer(0), 4)[:300]:
        sink.feed(TextDelta(piece))
        clock[0] += 0.001  # 1000 tokens/s
    assert 1 <= paints <= 300 * 0.001 * 30 + 2


def test_first_text_is_painted_at_once():
    env, out, _ = tty_env()
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False, clock=lambda: 5.0)
    sink.begin()
    sink.feed(TextDelta("Hello"))
    assert "Hello" in out.getvalue()


EVIL = ("clear\x1b[2J\x1b[H title\x1b]0;pwned\x07 clip\x1b]52;c;ZXZpbA==\x07 bell\x07 "
        "red\x1b[31mRED\x1b[0m c1\x9b31m back\x08\x08 del\x7f cr\rx\n")


def test_model_escapes_never_reach_the_terminal():
    env, out, _ = tty_env()
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False)
    sink.begin()
    for piece in tokens(EVIL, 3):
        sink.feed(TextDelta(piece))
    sink.end(TurnResult())
    data = out.getvalue()
    for bad in ("\x1b[2J", "\x1b[H", "\x1b]0;", "\x1b]52;", "\x07", "\x9b", "\x08", "\x7f", "cr\rx", "\x1b[31mRED"):
        assert bad not in data, repr(bad)
    assert "␛" in data  # shown, not silently dropped


def test_no_color_keeps_layout_and_attributes_without_colors():
    text = "# Title\n\nSome **bold**, *italic* and `code`.\n\n" + sample_answer(0)
    env, out, _ = tty_env(NO_COLOR="1")
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False)
    sink.begin()
    for piece in tokens(text, 8):
        sink.feed(TextDelta(piece))
    sink.end(TurnResult())
    import re

    params = [p for sgr in re.findall(r"\x1b\[([0-9;]*)m", out.getvalue()) for p in sgr.split(";") if p]
    assert params and not [p for p in params if int(p) >= 30], "a color code under NO_COLOR"
    assert {"1", "3"} <= set(params)  # bold and italic stay
    term = Terminal(80, 24)
    term.feed(out.getvalue())
    assert term.lines() == expected(text, 80)


def test_reasoning_is_dim_on_stderr_and_answer_on_stdout():
    env, out, err = tty_env()
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False)
    sink.begin()
    sink.feed(ReasoningDelta("thinking hard"))
    sink.feed(TextDelta("The answer"))
    sink.end(TurnResult())
    assert "thinking hard" in ANSI.sub("", err.getvalue()) and "\x1b[2m" in err.getvalue()
    assert "thinking" not in out.getvalue() and "The answer" in out.getvalue()


def test_interrupted_answer_is_marked():
    env, out, _ = tty_env()
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False)
    sink.begin()
    sink.feed(TextDelta("partial answ"))
    sink.end(TurnResult(outcome=Outcome.INTERRUPTED))
    term = Terminal(80, 24)
    term.feed(out.getvalue())
    assert term.lines() == ["partial answ", "[interrupted]"]


def test_large_answer_linear_layout():
    text = answer_of_size(30_000)
    term, _ = replay(text, 80, 24, chunk=16)
    assert term.lines() == expected(text, 80)


def test_never_clears_the_screen_from_the_region_top():
    """tmux copies a clear-from-top-left into the scrollback: a region at the top of the
    screen would then be duplicated on every repaint. Repaints overwrite lines in place."""
    term, data = replay(TALL_CODE, 60, 12, chunk=3, step=0.05, env_extra={})
    assert "A\x1b[J" not in data and "\x1b[2J" not in data
    assert term.lines() == expected(TALL_CODE, 60)


def test_compacted_styles_draw_the_same_cells():
    import pyte

    from streamchat.render.ansi import compact as _compact
    from streamchat.render.markdown_stream import parse

    lines = LineRenderer(color_system="256").render(parse("# Title\n\n**b** *i* `c`\n\n```python\ndef f(x):\n    return x\n```"), 40)

    def cells(text: str) -> list[tuple[str, str, str, bool, bool]]:
        screen = pyte.Screen(40, len(lines) + 1)
        pyte.Stream(screen).feed("\r\n".join(text_lines for text_lines in text))
        return [(c.data, c.fg, c.bg, c.bold, c.italics) for row in screen.buffer.values() for c in row.values()]

    assert cells([_compact(line) for line in lines]) == cells(lines)
    assert sum(map(len, (_compact(line) for line in lines))) < sum(map(len, lines))


def test_repaints_skip_unchanged_rows():
    text = "word " * 150  # one paragraph of several rows, growing
    term, data = replay(text, 80, 24, chunk=5, step=0.05, env_extra={})
    # 150 repaints of a paragraph growing to 10 rows: rewriting the whole region each time cost
    # ~63 KB; rewriting from the first changed row costs ~10 KB
    assert len(data) < 20 * len(text)
    assert term.lines() == expected(text, 80)


def test_style_changes_written_as_differences_draw_the_same_cells():
    """Any sequence of styled segments: writing only what changed between styles draws the same
    cells (characters, colours, bold, italics, underline, reverse, strike) as Rich's full codes."""
    import pyte
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from streamchat.render.ansi import compact as _compact

    codes = st.sampled_from(["1", "2", "3", "4", "7", "9", "31", "97", "38;5;204", "38;5;231", "38;2;1;2;3",
                             "40", "48;5;235", "48;5;17", "39", "49", "22", "23", "0", "1;3", "38;5;244;48;5;235"])
    segment = st.tuples(st.lists(codes, min_size=0, max_size=3), st.text("ab c", min_size=0, max_size=3))

    def cells(line: str) -> list[tuple]:
        screen = pyte.Screen(40, 2)
        pyte.Stream(screen).feed(line)
        return [(c.data, c.fg, c.bg, c.bold, c.italics, c.underscore, c.reverse, c.strikethrough)
                for c in screen.buffer[0].values()]

    @settings(max_examples=300, deadline=None)
    @given(st.lists(segment, max_size=8))
    def check(segments):
        # Rich's shape: each segment styled from the plain state, then reset
        line = "".join((f"\x1b[{';'.join(c)}m" if c else "") + text + "\x1b[0m" for c, text in segments)
        assert cells(_compact(line)) == cells(line)

    check()


def test_repaints_leave_no_stale_cells_when_rows_shrink_or_the_region_gets_shorter():
    """Rows are erased only where the old paint was wider, and the screen below only when the
    region lost rows (a CSI K per row and a CSI J per frame were most of a repaint's overhead)."""
    from streamchat.sinks.live_region import LiveRegion

    term = Terminal(20, 8)
    region = LiveRegion(term.feed)
    frames = [["alpha beta gamma", "two", "three"], ["alpha beta", "gamma two"], ["alpha beta", "gamma two", "x"],
              ["a"], ["a", "bb", "ccc", "dddd"], []]
    for live in frames:
        region.paint([], live, 20)
        assert term.lines() == live
    region.paint(["kept"], ["tail that is long", "t"], 20)
    region.paint([], ["tail"], 20)
    assert term.lines() == ["kept", "tail"]


def test_code_blocks_use_the_terminal_palette_unless_the_config_names_a_theme():
    """The default code theme is the terminal's own 16 colours and background (short codes, any
    palette); `code_theme` picks a Pygments style, and an unknown name is a config error."""
    from streamchat.config import parse_settings
    from streamchat.errors import ConfigError

    text = "```python\ndef f(x):\n    return 'a' + x  # note\n```\n"

    def painted(**kwargs):
        env, out, _ = tty_env()
        sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False, **kwargs)
        sink.begin()
        sink.feed(TextDelta(text))
        sink.end(TurnResult())
        return out.getvalue()

    default = painted()
    assert "\x1b[94mdef" in default and "38;5;" not in default and "48;5;" not in default
    monokai = painted(code_theme=parse_settings({"code_theme": "monokai"}).code_theme)
    assert "48;5;" in monokai or "48;2;" in monokai  # its own background
    screens = []
    for output in (default, monokai):
        term = Terminal(80, 24)
        term.feed(output)
        screens.append([line.strip() for line in term.lines()])
    assert screens[0] == screens[1] and "return 'a' + x  # note" in screens[0]
    with pytest.raises(ConfigError, match="unknown code_theme 'nope'"):
        parse_settings({"code_theme": "nope"})


CODE_SAMPLES = {
    "python": "```python\ndef f(x):\n    return 'a b' + x  # note\n\n\nclass C:\n    pass\n```",
    "js-tabs": "```javascript\nfunction f() {\n\tif (x) {\n\t\treturn \"é\";\n\t}\n}\n```",
    "unknown-lang": "```nosuchlanguage\nplain words here\n```",
    "no-lang": "```\nplain words\n  indented\n```",
    "wide": "```python\nname = '名前の長い変数'  # 日本語\n```",
    "exact-fit": "```text\n" + "x" * 39 + "\n" + "y" * 18 + "\n```",
    "too-long": "```python\nvalue = compute(first_argument, second_argument, third_argument)  # long\n```",
    "empty": "```python\n```",
    "indented": "Text.\n\n    indented = code\n    block()\n",
    "trailing-space": "```python\nx = 1   \n   \ny = 2\n```",
    "in-list": "- item\n\n  ```python\n  x = 1\n  ```\n",
    "in-quote": "> quoted\n>\n> ```python\n> def f():\n>     return 1\n> ```\n",
    # bullets: ordered lists differ from Rich's on purpose ("1." where Rich prints "1")
    "nested-list": "- one\n  - two\n\n    ```sh\n    echo \"$HOME\"  # a comment that is long enough to wrap\n    ```\n",
}


def _styled_cells(lines: list[str]) -> list[list[tuple[str, str]]]:
    """Each row as (character, SGR parameters in effect): the same cells however the styles are split."""
    import re

    rows = []
    for line in lines:
        state, row = "", []
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            if part.startswith("\x1b["):
                codes = part[2:-1]
                state = "" if codes in ("", "0") else ";".join(filter(None, (state, codes)))
            else:
                row.extend((ch, state) for ch in part)
        rows.append(row)
    return rows


@pytest.mark.parametrize("color_system,no_color", [("truecolor", False), ("256", False), ("standard", False),
                                                   ("256", True), (None, False)])
@pytest.mark.parametrize("theme", [None, "ansi_light", "monokai"])
@pytest.mark.parametrize("sample", sorted(CODE_SAMPLES))
def test_code_blocks_draw_the_cells_richs_syntax_draws(sample, theme, color_system, no_color):
    """Code blocks are drawn from Pygments' tokens, not through Rich's Syntax: the cells are the same
    (colours, NO_COLOR's attributes only, or none)."""
    from rich.markdown import Markdown

    from streamchat.render.markdown_stream import DEFAULT_CODE_THEME, parse

    text = CODE_SAMPLES[sample]
    renderer = LineRenderer(color_system=color_system, no_color=no_color, code_theme=theme)
    for width in (20, 41, 80):
        ours = renderer.render(parse(text, theme), width)
        richs = renderer.render(Markdown(text, code_theme=theme or DEFAULT_CODE_THEME, hyperlinks=False), width)
        assert _styled_cells(ours) == _styled_cells(richs), (sample, width)


def test_code_blocks_that_fit_are_drawn_without_richs_syntax(monkeypatch):
    """The fast path is the one taken for an everyday block in the default theme; a painted
    background or a line too long for the width still goes through Rich's Syntax."""
    import streamchat.render.code_render as code_render
    from streamchat.render.markdown_stream import parse

    used = []
    real = code_render.Syntax
    monkeypatch.setattr(code_render, "Syntax", lambda *a, **k: used.append(a) or real(*a, **k))
    renderer = LineRenderer()
    renderer.render(parse(CODE_SAMPLES["python"]), 80)
    assert used == []
    renderer.render(parse(CODE_SAMPLES["too-long"]), 40)
    renderer.render(parse(CODE_SAMPLES["python"], "monokai"), 80)
    assert len(used) == 2
