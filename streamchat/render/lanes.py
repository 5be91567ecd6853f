"""Several answers on one screen (a race): side by side on a wide terminal, stacked panes on a narrow one.

Pure layout, no terminal: each `Pane` is a header line, its body (Markdown already rendered to
ANSI lines at `pane_width`) and its footer lines; `compose` makes the screen's lines. Live
(`height` given), each pane shows the tail of its body that fits, so every answer stays in view
and the whole is never taller than `height`; final (`height` None), every line of every answer,
once — that is what the scrollback keeps.

The view's own lines (headers, rules, the gap between columns, footers) are styled only when
`styled` (`Environment.stdout_styled`, the rule stderr's notices follow): under NO_COLOR they
carry no SGR at all. The answers' Markdown keeps its attributes, as a single answer's does.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from rich.cells import cell_len

COLUMNS_MIN_WIDTH = 100  # narrower terminals stack the panes
MIN_COLUMN = 30  # a column narrower than this stacks too (many models on a 100-column terminal)
DIM, BOLD, RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
GAP = f" {DIM}│{RESET} "
PLAIN_GAP = " │ "
GAP_CELLS = 3
_SGR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Pane:
    header: str
    body: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)


def side_by_side(width: int, count: int) -> bool:
    """Columns (True) or stacked panes, for `count` answers on a terminal `width` columns wide."""
    return count > 1 and width >= COLUMNS_MIN_WIDTH and (width - GAP_CELLS * (count - 1)) // count >= MIN_COLUMN


def pane_width(width: int, count: int) -> int:
    """The width each answer is rendered at."""
    if side_by_side(width, count):
        return (width - GAP_CELLS * (count - 1)) // count
    return width


def cells(line: str) -> int:
    return cell_len(_SGR.sub("", line))


def styled(text: str, style: str, on: bool) -> str:
    """`text` in `style` (BOLD, DIM…) when `on`, else as it is: the view's own lines under NO_COLOR."""
    return f"{style}{text}{RESET}" if on and text else text


def header(name: str, width: int, *, style: bool = True) -> str:
    """`name ─────…` across the pane: the model's name in bold, a dim rule after it."""
    name = name if len(name) <= width - 2 else name[: max(1, width - 3)] + "…"
    rule = "─" * max(0, width - cell_len(name) - 1)
    return styled(name, BOLD, style) + (" " + styled(rule, DIM, style) if rule else "")


def pack(parts: list[str], width: int, sep: str = " · ") -> list[str]:
    """`parts` joined by `sep` into lines at most `width` cells wide, never splitting a part that fits
    on a line of its own (a footer's `cost $0.0001` stays whole)."""
    lines: list[str] = []
    for part in parts:
        if lines and cell_len(lines[-1] + sep + part) <= width:
            lines[-1] += sep + part
        else:
            lines += textwrap.wrap(part, width) or [""]
    return lines


def _pad(line: str, width: int) -> str:
    n = cells(line)
    return line + " " * (width - n) if n < width else line


def compose(panes: list[Pane], width: int, height: int | None = None, *, style: bool = True) -> list[str]:
    """The lines showing `panes` on a terminal `width` wide: at most `height` of them (live), or all."""
    if not panes:
        return []
    if side_by_side(width, len(panes)):
        lines = _columns(panes, pane_width(width, len(panes)), height, GAP if style else PLAIN_GAP)
    else:
        lines = _stacked(panes, height)
    return lines[-height:] if height is not None else lines


def _columns(panes: list[Pane], width: int, height: int | None, gap: str) -> list[str]:
    feet = max(len(p.footer) for p in panes)
    longest = max(len(p.body) for p in panes)
    rows = longest if height is None else min(longest, max(1, height - 1 - feet))
    shown = [p.body[-rows:] if rows else [] for p in panes]  # each answer's tail: its newest lines

    def row(cells_: list[str]) -> str:
        return gap.join(_pad(c, width) for c in cells_)

    out = [row([p.header for p in panes])]
    out += [row([body[r] if r < len(body) else "" for body in shown]) for r in range(rows)]
    out += [row([p.footer[r] if r < len(p.footer) else "" for p in panes]) for r in range(feet)]
    return out


def _stacked(panes: list[Pane], height: int | None) -> list[str]:
    if height is None:
        out: list[str] = []
        for i, p in enumerate(panes):
            out += ([""] if i else []) + [p.header, *p.body, *p.footer]
        return out
    rows = share([len(p.body) for p in panes], height - sum(1 + len(p.footer) for p in panes))
    out = []
    for p, n in zip(panes, rows, strict=True):
        out += [p.header, *(p.body[-n:] if n else []), *p.footer]
    return out


def share(wanted: list[int], room: int) -> list[int]:
    """Rows for each pane's body out of `room`: all it has when everything fits, else an even share,
    and what a short answer leaves goes to the longer ones (each gets at least one row if it has any)."""
    if sum(wanted) <= room:
        return list(wanted)
    given = [min(1, w) for w in wanted]
    room -= sum(given)
    while room > 0:
        hungry = [i for i, w in enumerate(wanted) if given[i] < w]
        if not hungry:
            break
        each = max(1, room // len(hungry))
        for i in hungry:
            more = min(each, wanted[i] - given[i], room)
            given[i] += more
            room -= more
            if room <= 0:
                break
    return given
