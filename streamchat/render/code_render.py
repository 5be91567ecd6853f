"""Code blocks drawn straight from Pygments' tokens: the same cells as Rich's `Syntax`, at a
fraction of its cost.

Rich builds a `Text` of the whole block, then wraps, justifies, crops and pads every line
through its generic machinery; on a code-heavy answer that was half of all rendering. When
the theme leaves the background to the terminal (the default) and every line fits the width,
nothing needs wrapping: each line is its tokens' segments plus padding, which is what Rich's
pipeline produces for such a line. Otherwise (a painted background, a line too long) Rich's
`Syntax` draws the block, so wrapping stays exactly Rich's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import CodeBlock
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax, SyntaxTheme

TAB_SIZE = 4  # Rich's Syntax default, which its Markdown code blocks use
PADDING = 1  # Rich's Markdown code blocks: one cell around the code, a blank row above and below

if TYPE_CHECKING:
    from pygments.lexer import Lexer


@functools.cache
def _lexer(name: str) -> Lexer:
    """Pygments' lexer for a fence's language, as Rich's `Syntax` makes it ('text' when unknown).
    Lexers keep no state between calls, so one per name serves every block."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=True, tabsize=TAB_SIZE)
    except ClassNotFound:
        return get_lexer_by_name("text", stripnl=False, ensurenl=True, tabsize=TAB_SIZE)


@functools.cache
def _theme(name: str) -> SyntaxTheme:
    return Syntax.get_theme(name)


class FastCodeBlock(CodeBlock):
    """Rich's Markdown code block, drawn from the tokens when that gives the same cells."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        theme = _theme(self.theme)
        width = options.max_width
        inner = width - 2 * PADDING
        base = theme.get_background_style()
        # decided on the code's own lines (the tokens hold the same text), so a block Rich draws is
        # not lexed here first as well
        fits = inner > 0 and all(cell_len(line) <= inner for line in code.expandtabs(TAB_SIZE).split("\n"))
        if base.transparent_background and fits:
            yield _Lines(_token_lines(code, self.lexer_name, theme), width, base)
        else:
            yield Syntax(code, self.lexer_name, theme=self.theme, word_wrap=True, padding=PADDING)


class _Lines:
    """The block's rows: a blank row, each line padded to the width, a blank row."""

    def __init__(self, lines: list[tuple[str, list[Segment]]], width: int, base: Style) -> None:
        self.lines, self.width, self.base = lines, width, base

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        base, width = self.base, self.width
        blank = Segment(" " * width + "\n", base)
        edge = Segment(" " * PADDING, base)
        yield blank
        for text, segments in self.lines:
            yield edge
            yield from segments
            yield Segment(" " * (width - PADDING - cell_len(text)), base)
            yield Segment.line()
        yield blank


def _token_lines(code: str, lexer_name: str, theme: SyntaxTheme) -> list[tuple[str, list[Segment]]]:
    """(plain text, segments) of each line of `code`, styled as Rich's `Syntax.highlight` styles it
    (the theme's background style under each token's)."""
    base = theme.get_background_style()
    styles: dict[object, Style] = {}
    lines: list[tuple[str, list[Segment]]] = []
    plain: list[str] = []
    segments: list[Segment] = []
    for token_type, value in _lexer(lexer_name).get_tokens(code.expandtabs(TAB_SIZE) + "\n"):
        style = styles.get(token_type)
        if style is None:
            style = styles[token_type] = base + theme.get_style_for_token(token_type)
        while value:
            piece, newline, value = value.partition("\n")
            if piece:
                plain.append(piece)
                segments.append(Segment(piece, style))
            if newline:
                lines.append(("".join(plain), segments))
                plain, segments = [], []
    return lines
