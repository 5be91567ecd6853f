"""Make model text safe for a terminal: no escape sequences of the model's own.

ESC, BEL, backspace and every other C0 control but TAB and LF are shown as Unicode
control pictures (␛, ␇ …), C1 controls (U+0080–U+009F, which some terminals treat as
CSI/OSC introducers) as U+FFFD, DEL as ␡, and CR is dropped (it would overwrite the line).
Lone surrogates (the bytes of a file name that is not UTF-8, as Python reads them) are shown
as U+FFFD too: no terminal can be sent them, and Python's stderr wrote them as "\\udce9".
Bidirectional controls (overrides U+202D/U+202E, embeddings, isolates, and the LRM/RLM/ALM marks)
are shown as `<U+202E>`: invisible, they reorder what is drawn, so a shell command or a tool call's
line could show one thing and be another (the "Trojan Source" trick).

`sanitize_command` is for text that is run or pasted as it is (a shell command, a tool call): there,
what is shown must be what runs, so nothing is dropped and nothing invisible passes for a space or for
nothing. CR is shown as ␍ (dropped, `safe \r# ; touch x` showed as a comment and ran `touch x`), and
every character that draws nothing or draws a blank but is not a space — non-ASCII spaces (U+00A0 …),
format characters (zero-width, bidi), C1 controls, variation selectors, Hangul fillers, and a combining
mark on no letter — is shown as `<U+00A0>`.
"""

from __future__ import annotations

import unicodedata

_TABLE: dict[int, str | None] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE[0x0D] = None
_TABLE[0x7F] = "\u2421"
_TABLE.update({c: "\ufffd" for c in range(0x80, 0xA0)})
_TABLE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})
BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_TABLE.update({c: f"<U+{c:04X}>" for c in BIDI})


def sanitize(text: str) -> str:
    return text.translate(_TABLE)



_CR_SHOWN = {0x0D: "\u240d"}
# letters and symbols that draw a blank: Hangul fillers, Khmer inherent vowels, the Braille blank,
# the combining grapheme joiner, Mongolian variation selectors
_BLANK = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0, *range(0x180B, 0x1810)}


def _hidden(c: str, before: str) -> bool:
    """A character that is not ASCII and draws nothing, a blank, or nothing of its own."""
    code = ord(c)
    if code < 0x80:
        return False
    kind = unicodedata.category(c)
    if kind[0] in "ZC" or code in _BLANK or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return True
    # a combining mark on a letter or digit changes how it looks; on a space or at the start it may draw nothing
    return kind[0] == "M" and not (before and unicodedata.category(before)[0] in "LNM")


def sanitize_command(text: str) -> str:
    """`text` as it must be shown when it will run as it is: see the module's docstring."""
    text = text.translate(_CR_SHOWN)
    if not text.isascii():
        text = "".join(f"<U+{ord(c):04X}>" if _hidden(c, text[i - 1] if i else "") else c
                       for i, c in enumerate(text))
    return sanitize(text)
