"""The prompt from arguments and piped stdin: binary, invalid or oversized input refused clearly."""

from __future__ import annotations

from streamchat.environment import Environment
from streamchat.errors import UsageError


def read_stdin(env: Environment, limit: int) -> str | None:
    """Piped stdin as text, or None for a terminal."""
    if env.stdin is None or env.stdin_isatty:
        return None
    try:
        data: bytes = env.stdin.buffer.read(limit + 1)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return None
    if len(data) > limit:
        raise UsageError(f"stdin is larger than {limit} bytes",
                         hint="pass less input, or raise max_input_bytes in the config")
    if b"\x00" in data:
        raise UsageError("stdin holds binary data (NUL bytes)", hint="pipe text, not a binary file")
    return utf8(data, "stdin")


def utf8(data: bytes, what: str, hint: str = "convert it first, e.g. iconv -f latin1 -t utf-8") -> str:
    """`data` as text, or a UsageError naming `what` and the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} is not valid UTF-8 (byte {exc.start})", hint=hint) from None


def file_label(name: str) -> str:
    """A file's name as text for labels, the log and messages. Linux names are bytes, and Python
    reads those that are not UTF-8 as lone surrogates, which no request or log can carry (a
    latin-1 name in a -f directory failed the turn as an internal error): each such byte shows
    as U+FFFD, while the path itself still opens the file."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def argv_text(value: str, what: str) -> str:
    """A command-line argument as text. Python reads argv bytes that are not UTF-8 as lone
    surrogates (U+DC80–U+DCFF), which no request, log or terminal can carry: the turn failed
    later as an "internal error: UnicodeEncodeError". Refused here, as stdin's are."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        utf8(value.encode("utf-8", "surrogateescape"), what,
             hint="pass UTF-8 text: check the terminal's locale (LANG, LC_ALL), or convert with iconv")
    return value


def compose_prompt(args: list[str] | None, stdin_text: str | None) -> str | None:
    """Arguments, stdin, or both (stdin appended after the prompt as context)."""
    prompt = " ".join(args or []).strip()
    context = (stdin_text or "").strip("\n")
    if prompt and context.strip():
        return f"{prompt}\n\n{context}"
    return prompt or (context if context.strip() else None)
