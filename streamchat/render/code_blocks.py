"""The fenced code blocks of an answer (markdown-it, the parser Rich's Markdown uses)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    closed: bool = True  # False: the answer ended inside it (cut off, or the fence never closed)

    @property
    def lines(self) -> int:
        return self.code.count("\n") + (0 if self.code.endswith("\n") else 1)


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced blocks in order (indented blocks are left out: in prose they are rarely meant as code)."""
    if "```" not in text and "~~~" not in text:  # a fence is 3+ backticks or tildes: no parse (each REPL answer)
        return []
    from markdown_it import MarkdownIt

    lines = re.split(r"\r\n?|\n", text)  # as markdown-it splits them, so its line numbers index this
    # raw HTML off, as the renderer parses (markdown_stream._parser): a fence inside a `<div>` block is
    # drawn as a code block, so it is listed as one
    parser = MarkdownIt("commonmark", {"html": False})
    return [CodeBlock(tok.info.strip().split(" ")[0], tok.content, _closed(tok.map, tok.markup, lines))
            for tok in parser.parse(text) if tok.type == "fence"]


def _closed(span: list[int] | None, markup: str, lines: list[str]) -> bool:
    """Whether the fence spanning `span` ends with its closing line. markdown-it ends an unclosed
    fence at the end of the text without saying so; its last line is then content, not a fence of
    the same character at least as long (after a blockquote's `>` or a list's indent)."""
    if span is None or span[1] - span[0] < 2:
        return False
    last = lines[span[1] - 1].lstrip(" \t>").rstrip()
    return len(last) >= len(markup) and last == markup[0] * len(last)


def extract(text: str, *, every: bool) -> tuple[str, bool] | None:
    """The first block's code (or all of them, a blank line apart), exactly, and whether a chosen
    block was left out because it never closed (half a command must not reach `sh`); None when the
    answer has no block."""
    blocks = code_blocks(text)
    if not blocks:
        return None
    chosen = blocks if every else blocks[:1]
    complete = [b for b in chosen if b.closed]
    code = "\n".join(b.code if b.code.endswith("\n") else b.code + "\n" for b in complete)
    return code, len(complete) < len(chosen)
