"""Make model text safe for a terminal: no escape sequences of the model's own.

ESC, BEL, backspace and every other C0 control but TAB and LF are shown as Unicode
control pictures (␛, ␇ …), C1 controls (U+0080–U+009F, which some terminals treat as
CSI/OSC introducers) as U+FFFD, DEL as ␡, and CR is dropped (it would overwrite the line).
Lone surrogates (the bytes of a file name that is not UTF-8, as Python reads them) are shown
as U+FFFD too: no terminal can be sent them, and Python's stderr wrote them as "\\udce9".
Bidirectional controls (overrides U+202D/U+202E, embeddings, isolates, and the LRM/RLM/ALM marks)
are shown as `<U+202E>`: invisible, they reorder what is drawn, so a shell command or a tool call's
line could show one thing and be another (the "Trojan Source" trick).
"""

from __future__ import annotations

_TABLE: dict[int, str | None] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE[0x0D] = None
_TABLE[0x7F] = "\u2421"
_TABLE.update({c: "\ufffd" for c in range(0x80, 0xA0)})
_TABLE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})
BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_TABLE.update({c: f"<U+{c:04X}>" for c in BIDI})


def sanitize(text: str) -> str:
    return text.translate(_TABLE)

