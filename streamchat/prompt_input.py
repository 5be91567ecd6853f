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
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"stdin is not valid UTF-8 (byte {exc.start})",
                         hint="convert it first, e.g. iconv -f latin1 -t utf-8") from None


def compose_prompt(args: list[str] | None, stdin_text: str | None) -> str | None:
    """Arguments, stdin, or both (stdin appended after the prompt as context)."""
    prompt = " ".join(args or []).strip()
    context = (stdin_text or "").strip("\n")
    if prompt and context.strip():
        return f"{prompt}\n\n{context}"
    return prompt or (context if context.strip() else None)
