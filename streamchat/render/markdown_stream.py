"""Incremental Markdown layout: finished blocks are rendered once, only the open tail is re-parsed.

`MarkdownStream` holds no terminal: it turns a growing text into lines to *commit*
(printed once, then left to scrollback) and lines of the *live* tail (repainted). Its
output, concatenated, equals a static `rich.markdown.Markdown` render of the whole text:
Rich separates top-level blocks with one blank line when the earlier block's element
has `new_line`, so that separator is carried across chunk boundaries here.
"""

from __future__ import annotations

import io
from typing import ClassVar, Literal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import ListItem, Markdown, MarkdownElement
from rich.segment import Segment
from rich.theme import Theme

# The terminal's own 16 colours and background: short SGR codes (a fixed 256-colour theme with
# its own background wrote ~2.3× the answer's bytes on a code-heavy answer, this ~1.6×), and
# code that reads in the user's palette, light or dark. `code_theme` in the config picks another.
DEFAULT_CODE_THEME = "ansi_dark"
ColorSystem = Literal["standard", "256", "truecolor"]


class LineRenderer:
    """Markdown source → ANSI lines at a width, with one Rich console per width."""

    def __init__(self, *, color_system: ColorSystem | None = "truecolor", no_color: bool = False,
                 code_theme: str | None = None) -> None:
        self.color_system = color_system
        self.no_color = no_color
        self.code_theme = code_theme
        self._consoles: dict[int, tuple[Console, io.StringIO]] = {}

    def parse(self, text: str) -> Markdown:
        return parse(text, self.code_theme)

    def _console(self, width: int) -> tuple[Console, io.StringIO]:
        if width not in self._consoles:
            buf = io.StringIO()
            console = Console(file=buf, width=width, force_terminal=self.color_system is not None,
                              color_system=self.color_system, no_color=self.no_color, highlight=False,
                              emoji=False, legacy_windows=False, soft_wrap=False, force_jupyter=False,
                              theme=Theme({}))
            self._consoles[width] = (console, buf)
        return self._consoles[width]

    def render(self, markdown: Markdown, width: int) -> list[str]:
        console, buf = self._console(width)
        buf.seek(0)
        buf.truncate()
        console.print(markdown)
        out = buf.getvalue()
        if not out:
            return []
        return out[:-1].split("\n") if out.endswith("\n") else out.split("\n")


class NumberedItem(ListItem):
    """An ordered-list item numbered "1." as people write it (Rich's own prints "1")."""

    def render_number(self, console: Console, options: ConsoleOptions, number: int, last_number: int
                      ) -> RenderResult:
        number_width = len(str(last_number)) + 3
        lines = console.render_lines(self.elements, options.update(width=options.max_width - number_width),
                                     style=self.style)
        number_style = console.get_style("markdown.item.number", default="none")
        padding = Segment(" " * number_width, number_style)
        numeral = Segment(f"{number}.".rjust(number_width - 1) + " ", number_style)
        for i, line in enumerate(lines):
            yield padding if i else numeral
            yield from line
            yield Segment("\n")


class StreamMarkdown(Markdown):
    """Rich's Markdown with our element overrides (one dict entry each, not a fork)."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {**Markdown.elements, "list_item_open": NumberedItem}


def parse(text: str, code_theme: str | None = None) -> Markdown:
    """`code_theme` None: the default. The one place where the config's choice meets the default."""
    # Links as "text (url)": no OSC 8 hyperlinks, which many terminals and pagers mangle.
    return StreamMarkdown(text, code_theme=code_theme or DEFAULT_CODE_THEME, hyperlinks=False)


def check_code_theme(name: str) -> str | None:
    """Why `name` cannot colour code (None when it can): Rich's ansi_dark / ansi_light or a Pygments style."""
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound
    from rich.syntax import RICH_SYNTAX_THEMES

    if name in RICH_SYNTAX_THEMES:
        return None
    try:  # Rich itself would quietly fall back to Pygments' "default"
        get_style_by_name(name)
    except ClassNotFound:
        return f"unknown code_theme '{name}'"
    return None


def _top_level_starts(md: Markdown) -> list[tuple[int, str]]:
    """(first source line, token type) of each top-level block."""
    return [(tok.map[0], tok.type) for tok in md.parsed if tok.level == 0 and tok.nesting >= 0 and tok.map]


def _line_offsets(text: str) -> list[int]:
    offsets = [0]
    pos = text.find("\n")
    while pos != -1:
        offsets.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return offsets


class MarkdownStream:
    def __init__(self, renderer: LineRenderer | None = None) -> None:
        self.renderer = renderer or LineRenderer()
        self.text = ""
        self.base = 0  # offset of the open (unfinished) region in `text`
        self.separator = False  # a blank line is owed before the next block
        self.printed = 0  # lines of the open region already committed (tall blocks)

    def append(self, text: str) -> None:
        self.text += text

    def update(self, width: int, max_live: int) -> tuple[list[str], list[str]]:
        """→ (lines to commit now, live lines). Re-parses only from the open block."""
        commit: list[str] = []
        src = self.text[self.base :]
        blocks = _top_level_starts(self.renderer.parse(src))
        if len(blocks) >= 2:
            cut_line, _ = blocks[-1]
            cut = _line_offsets(src)[cut_line]
            lines = self._render(src[:cut], width)
            commit.extend(lines[self.printed :])
            self.separator = _owes_separator(blocks[-2][1])
            self.base += cut
            self.printed = 0
            src = src[cut:]
        live = self._render(src, width)[self.printed :]
        if len(live) > max_live:  # a block taller than the screen: commit its top lines
            spill = len(live) - max_live
            commit.extend(live[:spill])
            self.printed += spill
            live = live[spill:]
        return commit, live

    def finish(self, width: int) -> list[str]:
        """The rest of the answer, to commit when the stream ends."""
        lines = self._render(self.text[self.base :], width)[self.printed :]
        self.base = len(self.text)
        self.printed = 0
        return lines

    def _render(self, src: str, width: int) -> list[str]:
        """Render a chunk as it would appear inside the whole answer.

        Rich puts one blank line before a block when the element closed before it has
        `new_line` (or when the block's own inner element did). A one-line sentinel
        paragraph in front recreates that state exactly; its line is then dropped.
        """
        if not self.separator:
            return self.renderer.render(self.renderer.parse(src), width)
        return self.renderer.render(self.renderer.parse("x\n\n" + src), width)[1:]


def _owes_separator(token_type: str) -> bool:
    element = StreamMarkdown.elements.get(token_type)
    return True if element is None else bool(element.new_line)


def render_static(text: str, width: int, renderer: LineRenderer | None = None) -> list[str]:
    """The reference: the whole answer rendered at once."""
    renderer = renderer or LineRenderer()
    return renderer.render(renderer.parse(text), width)
