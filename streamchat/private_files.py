"""Files only you can read or change: every directory streamchat creates is 0700 and every file it
writes 0600, whatever the umask; a config that someone else could change is refused.

One module so that each writer (config, roles, keys, the log, MCP server logs, REPL history, the
REPL's `/save` and `/save-code`) gets the same modes: under `umask 000` another local user once
replaced config.toml with an `api_key_cmd` that the victim's next run executed. Modes are given at creation (`os.mkdir(p, 0o700)`,
`O_CREAT` with 0600), so there is no moment at which a file is open to others.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import tempfile
from pathlib import Path
from typing import TextIO

from streamchat.errors import ConfigError, UnsafePermissionsError

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as 0700 (XDG asks for that too); existing ones are left as they are."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # made meanwhile by another streamchat: fine if it is a directory
            if not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None
            continue
        os.chmod(folder, DIR_MODE)  # a umask can only take bits away; this makes it exactly 0700
    return path


def tighten(path: Path, mode: int) -> None:
    """Take away the bits beyond `mode` from a file or directory of this user's that an older
    streamchat (or a umask) left open, such as a 0644 log in a 0755 directory; a symlink is left alone."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if st.st_uid == os.getuid() and not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, mode)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, 0600: written to a temp file beside it, then renamed over it, so a
    planted symlink at `path` is replaced, never followed, and a reader never sees half a file.
    A file that cannot be written is a ConfigError naming it (config init, roles, keys.json):
    it was "internal error: FileNotFoundError", exit 1."""
    try:
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise


def write_named(path: Path, text: str) -> None:
    """Write `text` to a file the user named (`/save`, `/save-code`), as a shell's `>` does (through a
    symlink, in place, its directory not created) but 0600: a transcript holds what the 0600 log holds,
    and was left 0644 by the umask. An existing looser file of this user's is made 0600 too, as
    `tighten` does, before it is emptied; a device (`/dev/null`) or another user's file keeps its mode:
    chmod made root's /dev/null 0600, and for anyone else it failed after the file was truncated (the
    old text lost, nothing written). OSError when it cannot."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~FILE_MODE:
                os.fchmod(fd, FILE_MODE)
            os.ftruncate(fd, 0)
        handle.write(text)


def _cannot_write(path: Path, exc: OSError) -> ConfigError:
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return ConfigError(f"cannot write {path}: {exc.strerror or exc}{where}",
                       hint="check that its directory can be created and written by you")


def _open_fd(path: Path, flags: int) -> int:
    """`path` opened (created 0600 if missing, never through a symlink), made 0600 if it was looser."""
    private_dir(path.parent)
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # a file from an older streamchat, or one a umask opened up
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_append(path: Path) -> TextIO:
    """A log file to append to (an MCP server's stderr), 0600 in a 0700 directory; where it cannot be
    written (a read-only data directory), the null device: a log never costs a tool or an answer."""
    try:
        return os.fdopen(_open_fd(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
    except OSError:
        return open(os.devnull, "a", encoding="utf-8")  # the caller closes it


def ensure_private_file(path: Path) -> Path:
    """Create `path` empty (or tighten it) as 0600 before a library opens it by name: SQLite gives
    its -wal and -shm files the database file's mode, prompt_toolkit appends to REPL history."""
    os.close(_open_fd(path, os.O_RDONLY))
    return path


def _private_group(gid: int) -> bool:
    """A group that holds only this user (a user private group, where `umask 002` is the default):
    its write bit lets no one else in, as Debian's ssh also accepts."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == os.getgid() and group.gr_name == user and set(group.gr_mem) <= {user}


def _problem(path: Path, st: os.stat_result) -> str | None:
    """Why someone other than this user (or root) could change `path`, or None."""
    if st.st_uid not in (os.getuid(), 0):
        return f"chown {os.getuid()} {shlex.quote(str(path))}"
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX  # /tmp: others cannot replace your entries
    if sticky:
        return None
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and not _private_group(st.st_gid)):
        return f"chmod go-w {shlex.quote(str(path))}"
    return None


def refuse_if_others_can_write(paths: list[Path]) -> None:
    """Refuse a config file (or a directory on its way, up to the home directory) that another user
    could change: what it says runs as you (`api_key_cmd`, MCP servers). ssh refuses the same way."""
    home = Path.home()
    seen: set[Path] = set()
    for path in paths:
        path = path.absolute()
        chain = [path]
        for parent in path.parents:
            chain.append(parent)
            if parent == home:
                break
        for item in chain:
            if item in seen:
                continue
            seen.add(item)
            try:
                st = item.stat()
            except OSError:
                continue
            fix = _problem(item, st)
            if fix:
                raise UnsafePermissionsError(f"{item} can be changed by other users, so streamchat will not use it",
                                             hint=f"run: {fix}")
