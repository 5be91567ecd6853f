"""Fewer bytes for the same cells: Rich's styled lines rewritten with each style change written
as only what changed, and the padding to the full width dropped. Pure string functions.

Rich styles each segment on its own (`ESC[97;40mtext ESC[0m`); on a code-heavy answer that
made the terminal receive several times the answer's size (see bench/render.py).
"""

from __future__ import annotations

import re

CSI = "\x1b["
RESET = "\x1b[0m"
ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")

_TRAILING_PAD = re.compile(r"(?:\x1b\[[0-9;]*m| )+$")
_SEGMENT = re.compile(r"\x1b\[([0-9;]*)m")


_Style = tuple["str | None", "str | None", frozenset[int]]  # foreground, background, flags (bold, italic…)
_PLAIN: _Style = (None, None, frozenset())
_FLAG_OFF = {1: 22, 2: 22, 3: 23, 4: 24, 5: 25, 7: 27, 8: 28, 9: 29}


def _style(params: str) -> _Style | None:
    """SGR parameters (from the plain state) as a style; None for codes this does not model."""
    fg: str | None = None
    bg: str | None = None
    flags: set[int] = set()
    codes = params.split(";")
    i = 0
    while i < len(codes):
        code = codes[i]
        if not code.isdigit():
            return None
        n = int(code)
        if n == 0:
            fg, bg, flags = None, None, set()
        elif n in _FLAG_OFF:
            flags.add(n)
        elif n in (38, 48):  # 38;5;N / 38;2;R;G;B
            size = 3 if codes[i + 1 : i + 2] == ["5"] else 5 if codes[i + 1 : i + 2] == ["2"] else 0
            if not size or len(codes) < i + size:
                return None
            value = ";".join(codes[i : i + size])
            fg, bg = (value, bg) if n == 38 else (fg, value)
            i += size - 1
        elif 30 <= n <= 37 or 90 <= n <= 97:
            fg = code
        elif 40 <= n <= 47 or 100 <= n <= 107:
            bg = code
        elif n == 39:
            fg = None
        elif n == 49:
            bg = None
        else:
            return None
        i += 1
    return fg, bg, frozenset(flags)


def _transition(old: _Style, new: _Style, params: str) -> str:
    """The shortest sequence from style `old` to `new` (given in full as `params`): only what
    changed (a code block's background is not repeated at every token), or a reset and the whole."""
    full = f"\x1b[0;{params}m" if params else RESET
    if new == _PLAIN:
        return RESET
    offs = sorted({_FLAG_OFF[f] for f in old[2] - new[2]})
    restore = new[2] & {1, 2} if 22 in offs else frozenset()  # 22 clears bold and dim together
    codes = [str(c) for c in offs] + [str(f) for f in sorted((new[2] - old[2]) | restore)]
    if new[0] != old[0]:
        codes.append(new[0] or "39")
    if new[1] != old[1]:
        codes.append(new[1] or "49")
    if not codes:  # the same cells under other codes (`1` then `1;1`): nothing to write
        return ""
    diff = f"\x1b[{';'.join(codes)}m"
    return diff if len(diff) < len(full) else full


def compact(line: str) -> str:
    """Rich styles each segment on its own (`ESC[97;40mtext ESC[0m`); consecutive segments of one
    style become one run, and a change of style writes only what changed — the same cells, fewer bytes."""
    if "\x1b[" not in line:
        return line
    out: list[str] = []
    current = ""  # the style in effect ("" = none), as parameters
    state: _Style | None = _PLAIN  # ...and as a style (None: not modelled, so changes are written whole)
    pending = ""  # the style Rich asked for next
    pos = 0

    def switch() -> None:
        nonlocal current, state
        target = _style(pending) if pending else _PLAIN
        if state is None or target is None:
            out.append(f"\x1b[0;{pending}m" if pending else RESET)
        else:
            out.append(_transition(state, target, pending))
        current, state = pending, target

    for match in _SEGMENT.finditer(line):
        text = line[pos : match.start()]
        if text:
            if pending != current:
                switch()
            out.append(text)
        params = match.group(1)
        if params in ("", "0"):
            pending = ""
        else:  # styles given back to back, with no text between them, add up
            pending = f"{pending};{params}" if pending and not text and pending != current else params
        pos = match.end()
    if line[pos:]:
        if pending != current:
            switch()
        out.append(line[pos:])
    if current:
        out.append(RESET)
    return "".join(out)


def trim(line: str) -> str:
    """Drop Rich's padding to the full width: a row that ends early never sits in the wrap
    column, so a terminal that re-wraps on resize (tmux, VTE…) has nothing to join to the
    next row when the window widens again (seen as two code lines side by side)."""
    match = _TRAILING_PAD.search(line)
    if match is None:
        return line
    return line[: match.start()] + (RESET if "\x1b[" in line else "")
