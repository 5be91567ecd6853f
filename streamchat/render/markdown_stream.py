"""Incremental Markdown layout: finished blocks are rendered once, only the open tail is re-parsed.

`MarkdownStream` holds no terminal: it turns a growing text into lines to *commit*
(printed once, then left to scrollback) and lines of the *live* tail (repainted). Its
output, concatenated, equals a static `rich.markdown.Markdown` render of the whole text:
Rich separates top-level blocks with one blank line when the earlier block's element
has `new_line`, so that separator is carried across chunk boundaries here.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import ListItem, Markdown, MarkdownElement
from rich.segment import Segment
from rich.theme import Theme

from streamchat.render.code_render import FastCodeBlock

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

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
        return self.markdown(tokenize(text))

    def markdown(self, tokens: list[Token]) -> Markdown:
        return StreamMarkdown(tokens, self.code_theme)

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
    """Rich's Markdown with our element overrides (one dict entry each, not a fork), made from
    tokens already parsed: Rich's own constructor builds a new parser and parses the text, and a
    live stream renders slices of one parse (finished blocks, then the open one)."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements, "list_item_open": NumberedItem, "fence": FastCodeBlock, "code_block": FastCodeBlock}

    def __init__(self, tokens: list[Token], code_theme: str | None = None) -> None:
        """Set the state Rich's `Markdown.__init__` sets (its internals, the one place they are set;
        tests/test_library_internals.py fails when a Rich release changes them)."""
        # `code_theme` None: the default. The one place where the config's choice meets the default.
        code_theme = code_theme or DEFAULT_CODE_THEME
        self.markup = ""
        self.parsed = tokens
        self.code_theme = code_theme
        self.justify = None
        self.style = "none"
        self.hyperlinks = False  # links as "text (url)": OSC 8 is mangled by many terminals and pagers
        self.inline_code_lexer = None
        self.inline_code_theme = code_theme


@functools.cache
def _parser() -> MarkdownIt:
    """The parser Rich's Markdown builds for itself (CommonMark, tables, strikethrough), built once
    (tests/test_library_internals.py checks it still parses as Rich's does), with raw HTML off: Rich
    drops HTML tokens, so `<br>`, `std::vector<int>` and a whole `<div>` block vanished from answers;
    as text they show as the model wrote them (as on serve's page). code_blocks.py parses alike."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")


def tokenize(text: str) -> list[Token]:
    tokens = _parser().parse(text)
    for tok in tokens:
        if tok.type == "inline" and tok.children and "![" in tok.content:
            tok.children = _images_as_links(tok.children)
    return tokens


def _images_as_links(children: list[Token]) -> list[Token]:
    """Each image as a link to its URL, its alt text the link's text: shown `alt (url)` where it stands.
    Rich draws an image as its own element, before the paragraph it sits in, and without its URL."""
    from markdown_it.token import Token

    out: list[Token] = []
    for tok in children:
        if tok.type != "image":
            out.append(tok)
            continue
        alt = _images_as_links(tok.children) if tok.children else [Token("text", "", 0, content="image")]
        out += [Token("link_open", "a", 1, attrs={"href": str(tok.attrs.get("src", ""))}), *alt,
                Token("link_close", "a", -1)]
    return out


def parse(text: str, code_theme: str | None = None) -> StreamMarkdown:
    return StreamMarkdown(tokenize(text), code_theme)


def _top_level_starts(tokens: list[Token]) -> list[tuple[int, int]]:
    """(token index, first source line) of each top-level block's opening token."""
    return [(i, tok.map[0]) for i, tok in enumerate(tokens) if tok.level == 0 and tok.nesting >= 0 and tok.map]


def _line_offsets(text: str) -> list[int]:
    offsets = [0]
    pos = text.find("\n")
    while pos != -1:
        offsets.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return offsets


# Rich puts one blank line before a block when the element closed before it has `new_line`.
# A one-line paragraph in front recreates that state for a block rendered apart from the one
# before it; its output line is dropped.
SENTINEL = "x\n\n"
SENTINEL_LINES = 2


class MarkdownStream:
    """A growing text → lines to commit (once) and live lines (repainted). One parse per update:
    the open region's tokens are split at its last top-level block; the blocks before it are
    finished (a later line cannot change them) and rendered once."""

    def __init__(self, renderer: LineRenderer | None = None) -> None:
        self.renderer = renderer or LineRenderer()
        self.open = ""  # the open (unfinished) region of the text: all the stream still parses
        self._pending: list[str] = []  # appended since the last update, joined once per update
        self.separator = False  # a blank line is owed before the next block
        self.printed = 0  # lines of the open region already committed (tall blocks)

    def append(self, text: str) -> None:
        self._pending.append(text)

    def _source(self) -> str:
        if self._pending:
            self.open += "".join(self._pending)
            self._pending.clear()
        return self.open

    def update(self, width: int, max_live: int) -> tuple[list[str], list[str]]:
        """→ (lines to commit now, live lines). Re-parses only from the open block."""
        commit: list[str] = []
        src = self._source()
        sentinel = self.separator
        tokens = tokenize(SENTINEL + src if sentinel else src)
        blocks = _top_level_starts(tokens)[1 if sentinel else 0 :]
        if len(blocks) >= 2:
            last, first_line = blocks[-1]
            commit.extend(self._render(tokens[:last], width, sentinel)[self.printed :])
            self.separator = _owes_separator(tokens[blocks[-2][0]].type)
            cut_line = first_line - (SENTINEL_LINES if sentinel else 0)
            self.open = src[_line_offsets(src)[cut_line] :]
            self.printed = 0
            tokens, sentinel = (tokenize(SENTINEL) + tokens[last:], True) if self.separator else (tokens[last:], False)
        live = self._render(tokens, width, sentinel)[self.printed :]
        if len(live) > max_live:  # a block taller than the screen: commit its top lines
            spill = len(live) - max_live
            commit.extend(live[:spill])
            self.printed += spill
            live = live[spill:]
        return commit, live

    def finish(self, width: int) -> list[str]:
        """The rest of the answer, to commit when the stream ends."""
        src = self._source()
        sentinel = self.separator
        lines = self._render(tokenize(SENTINEL + src if sentinel else src), width, sentinel)[self.printed :]
        self.open = ""
        self.printed = 0
        return lines

    def _render(self, tokens: list[Token], width: int, sentinel: bool) -> list[str]:
        lines = self.renderer.render(self.renderer.markdown(tokens), width)
        return lines[1:] if sentinel else lines


def _owes_separator(token_type: str) -> bool:
    element = StreamMarkdown.elements.get(token_type)
    return True if element is None else bool(element.new_line)


def render_static(text: str, width: int, renderer: LineRenderer | None = None) -> list[str]:
    """The reference: the whole answer rendered at once."""
    renderer = renderer or LineRenderer()
    return renderer.render(renderer.parse(text), width)
