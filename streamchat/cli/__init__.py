"""streamchat's CLI: a thin Typer app (options → settings → a front end); no provider SDK is imported here.

Each module registers its commands on the one app: `_chat` (the default command and `models`),
`_manage` (config, history, roles, keys), `_plugins`, `_serve`, `_access`, `_completion`.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import gc
import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from functools import partial
from typing import IO, Any

import typer

from streamchat import background
from streamchat.cli import _access, _chat, _completion, _manage, _plugins, _serve, _values  # noqa: F401 (they register their commands)
from streamchat.cli._app import COMPLETE_VAR, app, plain_arguments
from streamchat.exit_status import ExitStatus

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, *, stdin: bytes = b"",
         stdout: IO[bytes] | None = None, stderr: IO[bytes] | None = None) -> int:
    """The CLI. Without `argv`: this process's command line (the `streamchat` script), ending the
    process as it always has. With `argv`: in-process, for tests — `env` is the whole environment
    while it runs (os.environ is restored after), stdin is `stdin`, stdout and stderr go to the
    binary streams given (or nowhere), and the exit code is returned: no SystemExit, no exit
    without finalization, no heap frozen. What only a real process shows (signals, a closed pipe's
    file descriptor, the interpreter's exit) needs the script in a subprocess."""
    if argv is None:
        _process_main()
        return ExitStatus.OK  # not reached: _process_main ends in SystemExit
    output = sys.modules.get("streamchat.sinks._output")
    if output is not None:
        vars(output)["failure"] = None  # an earlier in-process run's
    with _in_process(argv, env, stdin, stdout, stderr):
        try:
            _built_command().main(args=list(argv), prog_name="streamchat", standalone_mode=True)
        except SystemExit as done:
            code = _code(done.code)
            return _code(ExitStatus.OUTPUT_CLOSED) if code == ExitStatus.OK and not _flushed(in_process=True) else code
        _flushed(in_process=True)
        return ExitStatus.OK


def _command() -> Any:
    """The Click command of the Typer app; on a Tab press only the shell classes are loaded besides."""
    command = _lazy_group()
    if command is None:  # a Typer without the functions _lazy_group calls: every command built now
        command = typer.main.get_command(app)
        _plain(command)
    if COMPLETE_VAR in os.environ:  # a Tab press: the shell classes, nothing else loads
        _completion.init_completion()
    return command


def _plain(command: Any) -> Any:
    plain_arguments(command)
    _values.install(command)  # values converted without importing pydantic
    return command


class LazyCommands(MutableMapping[str, Any]):
    """A group's subcommands by name, each converted from its Typer function when first looked up.

    Typer converts all 27 commands and groups at every start (each function's signature and type
    hints read, each parameter built): ~30 ms of CPU of every REPL launch and one-shot here (#34),
    though a run uses one. The names are known without converting anything, so `in`, iteration and
    the DefaultGroup's "is this word a command" cost nothing; `--help` and Tab convert them all."""

    def __init__(self, build: dict[str, Callable[[], Any]]) -> None:
        self._build, self._built = build, dict[str, Any]()

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = _plain(self._build[name]())  # KeyError for a name that is no command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._build.setdefault(name, lambda: command)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._build[name]
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._build

    def __iter__(self) -> Iterator[str]:
        return iter(self._build)

    def __len__(self) -> int:
        return len(self._build)

    @property
    def built(self) -> list[str]:
        """The names converted so far."""
        return list(self._built)


def _lazy_group() -> Any:
    """The app's group with its subcommands in a LazyCommands: the group and its global options
    converted by Typer as always (from a copy of the app without commands), each subcommand by
    Typer's own converter when first asked for. None when Typer lacks those converters."""
    main = typer.main
    convert_command, convert_group = getattr(main, "get_command_from_info", None), getattr(main, "get_group_from_info", None)
    if convert_command is None or convert_group is None or not hasattr(main, "get_command_name"):
        return None
    shared = {"pretty_exceptions_short": app.pretty_exceptions_short, "rich_markup_mode": app.rich_markup_mode}
    build: dict[str, Callable[[], Any]] = {}
    for info in app.registered_commands:
        name = info.name or main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
        build[name] = partial(convert_command, info, **shared)
    for group in app.registered_groups:
        if not isinstance(group.name, str):  # a group merged into the app's: Typer's way, all at once
            return None
        build[group.name] = partial(convert_group, group, suggest_commands=app.suggest_commands, **shared)
    bare = copy.copy(app)
    bare.registered_commands, bare.registered_groups = [], []
    root: Any = typer.main.get_command(bare)
    _plain(root)
    root.commands = LazyCommands(build)
    return root


_BUILT: list[Any] = []


def _built_command() -> Any:
    """`_command()`, built once for all in-process runs: converting the Typer app into Click's
    command is ~75 % of an in-process one-shot (~75 ms of ~100 here), and Click makes a fresh
    context for every run of the same command."""
    if not _BUILT:
        _BUILT.append(_command())
    elif COMPLETE_VAR in os.environ:
        _completion.init_completion()
    return _BUILT[0]


def _process_main() -> None:
    _closed_descriptors()
    command = _command()
    try:
        command()
    except SystemExit as done:
        code = _code(done.code)
        if code == ExitStatus.OK and not _flushed():
            code = _code(ExitStatus.OUTPUT_CLOSED)
            _exit(code)
            raise SystemExit(code) from None
        _exit(code)
        if code == ExitStatus.OUTPUT_FAILED:  # 141 from the command, told apart here
            raise SystemExit(code) from None
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


class _Closed(io.RawIOBase):
    """stdout when the process started with fd 1 closed (`>&-`: cron, daemons): a write fails as one to
    a reader that left (EBADF), so an answer ends OUTPUT_CLOSED and a command that writes nothing on
    stdout is unaffected. It was `sys.stdout is None`: "internal error: AttributeError", exit 1.
    Once said, later writes go nowhere, as they do once a closed pipe's stdout is silenced: the
    interpreter's flush at exit would print "Exception ignored" and exit 120."""

    said = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self.said:
            self.said = True
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return len(data)


def _closed_descriptors() -> None:
    """A standard descriptor the process started without gets /dev/null, so no file opened later
    (the log) takes its number: an answer written to fd 1 would have gone into SQLite's file. A
    closed stderr then swallows what is said (the turn keeps its own exit code, not 1); a closed
    stdout fails every write (`_Closed`); stdin stays None as Python set it (it reads as empty)."""
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, mode)
            except OSError:
                continue
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd == 1 and sys.stdout is None:
                sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Closed()), encoding="utf-8", errors="backslashreplace")
            if fd == 2 and sys.stderr is None:
                sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


@contextlib.contextmanager
def _in_process(argv: Sequence[str], env: Mapping[str, str] | None, stdin: bytes, stdout: IO[bytes] | None,
                stderr: IO[bytes] | None) -> Iterator[None]:
    """The process-wide state a command reads or sets, replaced for one in-process run and restored:
    the environment, argv, the standard streams, the signal handlers and the root logger."""
    import io
    import logging
    import signal

    def text(stream: IO[bytes] | None) -> io.TextIOWrapper:
        return io.TextIOWrapper(stream if stream is not None else io.BytesIO(), encoding="utf-8",
                                errors="backslashreplace", write_through=True)

    saved_env, saved_argv = dict(os.environ), sys.argv
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    root = logging.getLogger()
    saved_logging = root.handlers[:], root.level
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    sys.argv = ["streamchat", *argv]
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    ours = text(stdout), text(stderr)
    sys.stdout, sys.stderr = ours
    try:
        yield
    finally:
        # Only the wrappers made here are flushed and detached (the caller's binary streams stay
        # open), whatever sys.stdout is by now: detaching the current one detached a host's own
        # stream (pytest's capture file, in a run of the suite without xdist), and a flush that
        # raised OSError skipped restoring the streams.
        for stream in ours:
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
            with contextlib.suppress(ValueError):
                stream.detach()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_signals.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        root.handlers[:] = saved_logging[0]
        root.setLevel(saved_logging[1])


def _exit(code: int) -> None:
    """A background load in flight (the SDK preimport, the REPL's warm-up): end without the
    interpreter's finalization, which racing with an import crashed 1 early exit in 200 (#28.1)."""
    if background.busy():
        background.leave(code)


def _flushed(*, in_process: bool = False) -> bool:
    """Write what stdout still buffers (`history`, `--version`); False when its reader is gone: the
    interpreter's own flush at exit would print "Exception ignored … BrokenPipeError" and exit 120."""
    from streamchat.sinks._output import silence_stdout

    try:
        sys.stdout.flush()
    except OSError as exc:
        from streamchat.sinks._output import failed, stdout_failed

        if stdout_failed(exc):  # a full disk: said, and exit OUTPUT_FAILED (_code)
            failed(exc)
        if not in_process:
            silence_stdout()
        return False
    return True


def _code(code: object) -> int:
    """SystemExit's code as the process's exit status (None is 0; a message is 1, as Python does)."""
    if code is None:
        return ExitStatus.OK
    if code == ExitStatus.OUTPUT_CLOSED and _output_failed():
        return ExitStatus.OUTPUT_FAILED
    return code if isinstance(code, int) else ExitStatus.ERROR


def _output_failed() -> bool:
    """Whether stdout failed (a full disk) rather than its reader leaving (sinks/_output.py)."""
    output = sys.modules.get("streamchat.sinks._output")
    return output is not None and getattr(output, "failure", None) is not None
