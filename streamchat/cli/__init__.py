"""streamchat's CLI: a thin Typer app (options → settings → a front end); no provider SDK is imported here.

Each module registers its commands on the one app: `_chat` (the default command and `models`),
`_manage` (config, history, roles, keys), `_plugins`, `_serve`, `_access`, `_completion`.
"""

from __future__ import annotations

import gc
import os
import sys

import typer

from streamchat import background
from streamchat.cli import _access, _chat, _completion, _manage, _plugins, _serve, _values  # noqa: F401 (they register their commands)
from streamchat.cli._app import COMPLETE_VAR, app, plain_arguments
from streamchat.exit_status import ExitStatus

__all__ = ["app", "main"]


def main() -> None:
    command = typer.main.get_command(app)
    plain_arguments(command)
    _values.install(command)  # values converted without importing pydantic
    if COMPLETE_VAR in os.environ:  # a Tab press: the shell classes, nothing else loads
        _completion.init_completion()
    try:
        command()
    except SystemExit as done:
        code = _code(done.code)
        if code == ExitStatus.OK and not _flushed():
            code = ExitStatus.OUTPUT_CLOSED
            _exit(code)
            raise SystemExit(code) from None
        _exit(code)
        raise
    except BaseException:
        if background.busy():
            sys.excepthook(*sys.exc_info())  # a --debug traceback, shown before leaving without finalizing
            _exit(ExitStatus.ERROR)
        raise
    finally:
        # Leave every object to the process's end: the interpreter's collections at exit walk all
        # that the SDK imports created, 0.3-0.6 s of a one-shot here, and free nothing that matters
        # (files and the log are closed by then; refcounting still frees the rest).
        gc.freeze()


def _exit(code: int) -> None:
    """A background load in flight (the SDK preimport, the REPL's warm-up): end without the
    interpreter's finalization, which racing with an import crashed 1 early exit in 200 (#28.1)."""
    if background.busy():
        background.leave(code)


def _flushed() -> bool:
    """Write what stdout still buffers (`history`, `--version`); False when its reader is gone: the
    interpreter's own flush at exit would print "Exception ignored … BrokenPipeError" and exit 120."""
    from streamchat.sinks._output import silence_stdout

    try:
        sys.stdout.flush()
    except OSError:
        silence_stdout()
        return False
    return True


def _code(code: object) -> int:
    """SystemExit's code as the process's exit status (None is 0; a message is 1, as Python does)."""
    if code is None:
        return ExitStatus.OK
    return code if isinstance(code, int) else ExitStatus.ERROR
