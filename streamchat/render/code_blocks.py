"""The fenced code blocks of an answer (markdown-it, the parser Rich's Markdown uses)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str

    @property
    def lines(self) -> int:
        return self.code.count("\n") + (0 if self.code.endswith("\n") else 1)


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced blocks in order (indented blocks are left out: in prose they are rarely meant as code)."""
    from markdown_it import MarkdownIt

    return [CodeBlock(tok.info.strip().split(" ")[0], tok.content)
            for tok in MarkdownIt().parse(text) if tok.type == "fence"]


def extract(text: str, *, every: bool) -> str | None:
    """The first block's code (or all of them, a blank line apart), exactly; None when there is none."""
    blocks = code_blocks(text)
    if not blocks:
        return None
    chosen = blocks if every else blocks[:1]
    return "\n".join(b.code if b.code.endswith("\n") else b.code + "\n" for b in chosen)
