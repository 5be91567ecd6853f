"""The live region at the bottom of the terminal: lines repainted in place, lines committed above
it to the scrollback, counting screen rows as the terminal wraps them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from rich.cells import cell_len

from streamchat.environment import Environment
from streamchat.render.ansi import ANSI_SGR, CSI, compact, trim

SYNC_START, SYNC_END = "\x1b[?2026h", "\x1b[?2026l"  # synchronized output; ignored where unknown


def terminal_size(env: Environment) -> tuple[int, int]:
    """The size of the terminal stdout is on (not of whatever COLUMNS/LINES claim)."""
    try:
        size = os.get_terminal_size(env.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        size = shutil.get_terminal_size()
    return max(20, size.columns), max(3, size.lines)


class LiveRegion:
    """Paints lines at the bottom of the terminal and commits lines above it.

    The cursor always rests at the start of the line below the region, so a repaint is:
    up N rows, clear to the end of the screen, write committed lines, write live lines.
    N counts screen rows, not lines: after the window narrows, a reflowing terminal
    (tmux, VTE, kitty, iTerm2, WezTerm, Alacritty, Konsole) has re-wrapped each line
    wider than the new width onto several rows; xterm truncates them instead.
    """

    def __init__(self, write: Callable[[str], None], *, reflow: bool = True) -> None:
        self.write = write
        self.reflow = reflow
        self.height = 0  # lines in the live region
        self._lines: list[str] = []  # as written, to repaint only what changed
        self._cells: list[int] = []  # their widths on screen
        self.width = 0
        self._painted_width = 0

    def rows(self) -> int:
        """Screen rows the live region occupies now, at the current width."""
        return self._rows(self._cells)

    def _rows(self, cells: list[int]) -> int:
        if not self.reflow or not self.width:
            return len(cells)
        return sum(max(1, -(-n // self.width)) for n in cells)

    def paint(self, commit: list[str], live: list[str], width: int) -> None:
        """Bring the screen from the last paint to `commit` + `live`, writing only what changed.

        Rows equal to the last paint are skipped (the cursor moves over them); the rest is
        rewritten and the screen below cleared. After a width change every row is rewritten. No erase-display is ever issued
        from the top-left corner: tmux (like xterm with some settings) copies a whole-screen
        clear into the scrollback, which would duplicate the region once it sits at the top.
        """
        self.width = width
        new = [compact(trim(line)) for line in (*commit, *live)]
        cells = [cell_len(ANSI_SGR.sub("", line)) for line in new]
        old, old_cells = self._lines, self._cells
        aligned = width == self._painted_width  # each old line still sits on its own row
        same = 0
        if aligned:
            while same < min(len(old), len(new)) and old[same] == new[same]:
                same += 1
        self._painted_width = width
        self.height = len(live)
        self._lines, self._cells = new[len(commit):], cells[len(commit):]
        if same == len(old) == len(new):
            return  # nothing changed on screen
        up = self._rows(old_cells[same:])
        parts = [SYNC_START]
        if up:
            parts.append(f"\r{CSI}{up}A")
        if not new:  # nothing to draw: blank the old rows one by one, then come back up
            parts.append(f"{CSI}2K" + f"{CSI}1B{CSI}2K" * (up - 1) + (f"{CSI}{up - 1}A" if up > 1 else ""))
        else:
            for row, (line, n) in enumerate(zip(new[same:], cells[same:], strict=True), start=same):
                # erase the rest of the row only if what was painted there was wider
                stale = not aligned or (row < len(old_cells) and old_cells[row] > n)
                parts.append(self._line(line, n, width, stale))
            if not aligned or len(old) > len(new):  # old rows left below the new ones
                parts.append(f"{CSI}J")
        parts.append(SYNC_END)
        self.write("".join(parts))

    @staticmethod
    def _line(line: str, cells: int, width: int, stale: bool) -> str:
        # Erase the rest of a short line over wider old text; a full-width line must not get EL,
        # which would erase its last cell while the cursor waits in the wrap column.
        return line + (f"{CSI}K\n" if stale and cells < width else "\n")

    def resized(self, width: int) -> None:
        """The terminal changed width: rows() now counts re-wrapped lines."""
        self.width = width
