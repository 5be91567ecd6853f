"""Every exit code streamchat ends with, each with its meaning; `--help` and README's table list these.

A new way to fail gets a member here (and so a line in `--help`), never a bare integer at an exit site.
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique  # two ways to fail given one number would make the second a silent alias, missing from --help
class ExitStatus(IntEnum):
    """The process's exit codes. `meaning` is the few words `--help` shows."""

    meaning: str

    # `meaning` defaults only so `ExitStatus(143)` type-checks: that call looks a member up, it makes none
    def __new__(cls, code: int, meaning: str = "") -> ExitStatus:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "ok"
    ERROR = 1, "unexpected error (--debug shows why)"
    USAGE = 2, "usage"
    CONFIG = 3, "config/auth"
    REQUEST = 4, "bad request/unknown model"
    SERVER = 5, "rate limit/server"
    NETWORK = 6, "network/timeout"
    TOOL = 7, "tool failed/tool-step limit"
    SCHEMA = 8, "answer does not fit --schema"
    CUT_OFF = 9, "-x: code cut off at the token limit"
    UNCLOSED_CODE = 10, "-x: code block never closed"
    LOG_DAMAGED = 11, "log damaged (sqlite3 FILE .recover)"
    UNSAFE = 12, "config others can change (refused)"
    PLUGIN = 13, "--functions file or plugin failed to load"
    OUTPUT_FAILED = 14, "stdout could not be written (disk full)"
    HANGUP = 129, "SIGHUP"
    INTERRUPTED = 130, "interrupted"
    OUTPUT_CLOSED = 141, "output closed"
    TERMINATED = 143, "SIGTERM"


SHELL_NOTE = "--shell exits with the status of the command it ran"


def help_text() -> str:
    """The exit-code line of `--help`, from the members above (none can be left out)."""
    codes = ", ".join(f"{status.value} {status.meaning}" for status in ExitStatus)
    return f"Exit codes: {codes}; {SHELL_NOTE}."
