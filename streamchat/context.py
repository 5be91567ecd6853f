"""`-f SOURCE`: text context from files, directories, globs, stdin, URLs, command output and plugins.

Each source becomes a labeled block appended to the question, so the model can cite it:
`<source name="src/app.py">…</source>`. Directories honor `.gitignore` (pathspec), skip
VCS/virtualenv/cache folders and binary files, and stop at a total size cap; what was
included or skipped is reported in one line before anything is sent.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import signal
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streamchat.errors import UsageError
from streamchat.fetch import fetch_url, shown_url
from streamchat.paths import user_path
from streamchat.prompt_input import file_label, utf8
from streamchat.render.sanitize import sanitize
from streamchat.ui import byte_size

SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
                       ".pytest_cache", ".ruff_cache", ".tox", ".idea", ".DS_Store"})
FILE_CAP = 256 * 1024  # a file inside a directory larger than this is skipped
TOTAL_CAP = 1024 * 1024  # all -f sources together
NOT_READ_COUNT = 10_000  # past the cap, files are only counted, up to this many (`-f /` is not walked whole)
COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Piece:
    """One included text (or a skipped source, with `text` None and the reason in `note`); an
    included one's `note` (a command that printed nothing) is shown in place of its size."""

    name: str
    text: str | None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", file_label(self.name))  # frozen


@dataclass
class Gathered:
    pieces: list[Piece]
    not_read: int = 0  # the files met after the total cap was reached (counted, not opened)
    count_limit: int = NOT_READ_COUNT  # the walk stopped counting there

    @property
    def included(self) -> list[Piece]:
        return [p for p in self.pieces if p.text is not None]

    def render(self) -> str:
        """The blocks appended to the question."""
        return "\n\n".join(f'<source name="{p.name}">\n{p.text.rstrip()}\n</source>' for p in self.included
                           if p.text is not None)

    def summary(self) -> str:
        """One line for stderr: what goes to the model and what was left out (file names made
        safe: a name is any bytes, an escape sequence or a newline included)."""
        inc = [f"{p.name} ({p.note or byte_size(len(p.text.encode()))})" for p in self.included if p.text is not None]
        skipped = [f"{p.name} ({p.note})" for p in self.pieces if p.text is None]
        parts = []
        if inc:
            parts.append("included: " + ", ".join(inc[:12]) + (f" and {len(inc) - 12} more" if len(inc) > 12 else ""))
        if skipped:
            parts.append("skipped: " + ", ".join(skipped[:8]) + (f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""))
        if self.not_read:
            over = "over " if self.not_read >= self.count_limit else ""
            parts.append(f"{over}{self.not_read:,} more file{'s' if self.not_read != 1 else ''} not read "
                         f"(the {byte_size(TOTAL_CAP)} total was reached)")
        return terminal_line(" · ".join(parts))


def terminal_line(text: str) -> str:
    """A line that quotes file names or URLs, safe for the terminal: escape sequences shown as
    control pictures (the sanitizer), and a newline in a name as ␊, so it cannot start a line
    of its own (a file named "x\nerror: …" drew a fake error line)."""
    return sanitize(text.replace("\n", "\u240a"))


def _decode(data: bytes) -> str | None:
    """Text, or None for binary data (a NUL byte, or not UTF-8)."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Budget:
    """What all sources share: the bytes left under the cap, and the files already read (by real
    path), so a file reached twice (a directory and a glob, `DIR/**` matching a folder and its
    files, a symlink to a file inside) is included once."""

    def __init__(self, cap: int, count_limit: int = NOT_READ_COUNT) -> None:
        self.left = cap
        self.full = False  # a file did not fit what was left: the walks stop reading (QA-19: `-f /usr`)
        self.not_read = 0
        self.count_limit = count_limit
        self.seen: set[str] = set()
        self.noted: set[str] = set()  # the symlinks already listed as skipped, by where they lead
        self.reached = 0  # files and skipped symlinks met, new or not (a folder whose all were met before is not empty)

    def take(self, n: int) -> bool:
        if n > self.left:
            return False
        self.left -= n
        return True

    def count_unread(self) -> bool:
        """One more file met after the cap was reached; whether to go on counting."""
        self.reached += 1
        self.not_read += 1
        return self.not_read < self.count_limit

    def first_time(self, real: str) -> bool:
        self.reached += 1
        if real in self.seen:
            return False
        self.seen.add(real)
        return True

    def first_note(self, key: str) -> bool:
        """Whether a skipped symlink is listed for the first time (`-f 'proj/**'` reaches one by
        the walk and by the glob, and through a link back up (`sub/up -> ..`) under many names)."""
        self.reached += 1
        if key in self.noted:
            return False
        self.noted.add(key)
        return True


def gather(sources: list[str], *, stdin: Callable[[], str | None], timeout: float,
           cap: int = TOTAL_CAP, count_limit: int = NOT_READ_COUNT) -> Gathered:
    """Read every source; a source that cannot be read at all is an error (nothing is sent)."""
    budget = _Budget(cap, count_limit)
    pieces: list[Piece] = []
    for source in sources:
        pieces += _one(source, stdin=stdin, timeout=timeout, budget=budget)
    return Gathered(pieces, budget.not_read, count_limit)


def _one(source: str, *, stdin: Callable[[], str | None], timeout: float, budget: _Budget) -> list[Piece]:
    if source == "-":
        text = stdin()
        if text is None:
            raise UsageError("-f - reads stdin, but stdin is a terminal", hint="pipe text in, or drop -f -")
        return [_budgeted(Piece("stdin", text), budget)]
    if source.startswith("!"):
        output = run_command(source[1:])
        return [_budgeted(Piece(source, output, "" if output.strip() else "printed nothing"), budget)]
    if source.startswith(("http://", "https://")):
        return [_budgeted(Piece(shown_url(source), fetch_url(source, timeout=timeout)), budget)]
    plugin = _plugin_source(source)
    if plugin is not None:
        return [_budgeted(Piece(name, text), budget) for name, text in plugin(source.partition(":")[2])]
    path = user_path(source)
    if path.is_dir():
        reached = budget.reached
        pieces = _directory(path, source, budget, within=os.path.realpath(path))
        if budget.reached == reached:  # empty, not only files another source already sent
            raise UsageError(f"{source} holds no text files", hint="check .gitignore, or name the files")
        return pieces
    if path.exists():  # a file, or a pipe such as -f <(git diff), or a device: named, so read wherever it is
        if not budget.first_time(os.path.realpath(path)):
            return []
        return [_file(path, source, budget, explicit=True)]
    if _has_magic(source):
        return _globbed(source, budget)
    raise UsageError(f"no such file or directory: {source}", hint="check the path given to -f")


def _plugin_source(source: str) -> Callable[[str], list[tuple[str, str]]] | None:
    """A plugin's reader of `PREFIX:REST` (`-f gh:owner/repo/path`), when one registers PREFIX;
    a path that merely holds a colon (`-f ./a:b`) never reads as one."""
    prefix, sep, _rest = source.partition(":")
    if not sep or "/" in prefix or "." in prefix:
        return None
    from streamchat.plugins import source_loader

    return source_loader(prefix)


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _globbed(pattern: str, budget: _Budget) -> list[Piece]:
    """What a pattern matches, kept inside the pattern's base (the folders before its first
    wildcard): `**` follows symlinked folders, and a match may itself be a symlink."""
    expanded = os.path.expanduser(pattern)
    matches = sorted(_glob_inside(expanded))
    if not matches:
        raise UsageError(f"no file matches {pattern}", hint="check the pattern (quote it so the shell leaves it)")
    fixed = _glob_base(expanded)
    base, shown = os.path.realpath(fixed), _glob_base(pattern)
    out: list[Piece] = []
    walked: list[str] = []  # the folders walked (real paths): a match inside one was reached by that walk
    for match in matches:
        real = os.path.realpath(match)
        if not _inside(real, base):  # listed once, as the link that leads out (not each file beyond it)
            link = _exit_link(match, fixed, base)
            if budget.first_note(os.path.realpath(link)):
                out.append(Piece(link, None, _out_of(shown)))
        elif not os.path.exists(real):  # a broken link (a walk above it has said so already)
            parent = os.path.realpath(os.path.dirname(match))
            if not any(_inside(parent, folder) for folder in walked) and budget.first_note(real):
                out.append(Piece(match, None, "broken symlink"))
        elif os.path.isdir(real):  # by its real path: `**` through a link back up (`sub/up -> ..`) ends in ELOOP names
            if not any(_inside(real, folder) for folder in walked):
                walked.append(real)
                out += _directory(Path(real), match, budget, within=base, shown=shown)
        elif budget.full:
            if os.path.isfile(real) and not budget.count_unread():
                break
        elif os.path.isfile(real) and budget.first_time(real):  # not a pipe or socket a pattern matched: opening one waits
            out.append(_file(Path(real), match, budget, explicit=False))
    return out


def _glob_inside(pattern: str) -> list[str]:
    """What `glob.glob(pattern, recursive=True)` matches, found by a walk that never goes through a
    symlink out of the pattern's fixed folders nor into a folder it already walked: glob's `**`
    followed `dir/usr -> /usr` through all of /usr (over a minute) before anything was filtered, and
    `sub/up -> ..` again at every level (each time through any link out, too: no end in sight).
    What lies beyond such a link is not wanted anyway; the link itself is still a match (said skipped)."""
    fixed = _glob_base(pattern)
    wanted = Path(pattern).parts[0 if fixed == "." else len(Path(fixed).parts):]
    base = os.path.realpath(fixed)
    depth = 1 << 30 if "**" in wanted else len(wanted)
    hidden = any(part.startswith(".") for part in wanted)  # else no hidden name can match: not walked
    found: list[str] = []
    visited = {base}
    stack: list[tuple[tuple[str, ...], str, str]] = [((), fixed, base)]
    while stack:
        rel, folder, folder_real = stack.pop()
        if _glob_match(wanted, rel) and (rel or fixed != "."):
            found.append(os.path.join(fixed, *rel) if fixed != "." else os.path.join(*rel))
        if len(rel) >= depth:
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:  # not a folder, unreadable, or a link loop's end
            continue
        for entry in entries:
            if entry.name.startswith(".") and not hidden:
                continue
            path = os.path.join(folder, entry.name)
            real = os.path.realpath(path) if entry.is_symlink() else os.path.join(folder_real, entry.name)
            if entry.is_dir() and _inside(real, base) and real not in visited:
                visited.add(real)
                stack.append(((*rel, entry.name), path, real))
            elif _glob_match(wanted, (*rel, entry.name)) or entry.is_dir() and not _inside(real, base) and \
                    _glob_deeper(wanted, (*rel, entry.name)):  # a file; a link out the pattern looks through
                found.append(os.path.join(fixed, *rel, entry.name) if fixed != "." else os.path.join(*rel, entry.name))
    return found


def _glob_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether path `parts` match the pattern's parts as glob matches them: `**` any number of
    folders, and a name starting with a dot only by a part starting with one."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _glob_match(rest, parts) or bool(parts) and not parts[0].startswith(".") and _glob_match(pattern, parts[1:])
    if not parts or parts[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_match(rest, parts[1:])


def _glob_deeper(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether something below path `parts` could match: `**/*.md` looks through `outdir`, `*.md` does not."""
    if not parts:
        return bool(pattern)
    if not pattern:
        return False
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _glob_deeper(rest, parts) or not parts[0].startswith(".") and _glob_deeper(pattern, parts[1:])
    if parts[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_deeper(rest, parts[1:])


def _exit_link(match: str, fixed: str, base: str) -> str:
    """The first folder or file on `match`'s path, below the glob's fixed folders, that leads out of `base`."""
    parts = Path(match).parts
    for i in range(max(1, len(Path(fixed).parts)), len(parts) + 1):
        prefix = str(Path(*parts[:i]))
        if not _inside(os.path.realpath(prefix), base):
            return prefix
    return match


def _glob_base(pattern: str) -> str:
    """The leading folders of a pattern that hold no wildcard: `src/**/*.py` → `src`."""
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if _has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _inside(real: str, base: str) -> bool:
    return Path(real).is_relative_to(base)


def _out_of(base: str) -> str:
    """The skip note of a symlink that leads out of what was named (its target is not shown)."""
    return f"symlink out of {base.rstrip('/') or '/'}"


def _budgeted(piece: Piece, budget: _Budget) -> Piece:
    if piece.text is not None and not budget.take(len(piece.text.encode())):
        raise UsageError(f"{piece.name} is larger than the -f total of {byte_size(TOTAL_CAP)}",
                         hint="pass a smaller part of it")
    return piece


def _file(path: Path, name: str, budget: _Budget, *, explicit: bool) -> Piece:
    """Read at most what the budget has left (and one byte more, to know it did not fit): a pipe
    or a device has no size to check first, and a large file is not read whole to be refused."""
    try:
        info = path.stat()
        size = info.st_size
        if size > FILE_CAP and not explicit:
            return Piece(name, None, "too large")
        if size > budget.left and not explicit and stat.S_ISREG(info.st_mode):  # not opened to be refused
            budget.full = True
            return Piece(name, None, "over the total size cap")
        with path.open("rb") as f:
            data = f.read(budget.left + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}", hint="check the path and its permissions") from None
    if b"\x00" in data[:8192]:
        if explicit:
            raise UsageError(f"{name} is a binary file", hint="attach images and PDFs with -a instead")
        return Piece(name, None, "binary")
    if len(data) > budget.left:  # the read went one byte past what is left
        if explicit:
            held = byte_size(size) if size > len(data) else f"over {byte_size(budget.left)}"
            raise UsageError(f"{name} ({held}) does not fit the -f total of {byte_size(TOTAL_CAP)}",
                             hint="pass a smaller part of it")
        budget.full = True
        return Piece(name, None, "over the total size cap")
    if explicit:  # text in another encoding: say which byte
        text = utf8(data, name, hint=f"convert it first, e.g. iconv -f latin1 -t utf-8 {shlex.quote(name)}")
    else:
        decoded = _decode(data)
        if decoded is None:
            return Piece(name, None, "binary")
        text = decoded
    budget.take(len(data))
    return Piece(name, text)


def _directory(root: Path, name: str, budget: _Budget, *, within: str, shown: str | None = None) -> list[Piece]:
    """Every text file below `root`, sorted, minus what .gitignore files and SKIP_DIRS leave out.
    A symlink is followed only while it stays inside `within` (the real path of what was named,
    shown as `shown`): `ln -s ~/.ssh/id_rsa proj/notes.md` would otherwise send the key with
    `-f proj/`. One that leads out is listed as skipped (once), and so is a broken one; a
    symlinked folder that stays inside is not walked twice."""
    out_of = _out_of(name if shown is None else shown)
    import pathspec

    if not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(f"cannot read directory {name}", hint="check its permissions")
    specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
    pieces: list[Piece] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        ignore = here / ".gitignore"
        if ignore.is_file():
            lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append((here, pathspec.GitIgnoreSpec.from_lines(lines)))

        def ignored(path: Path, is_dir: bool) -> bool:
            for base, spec in specs:
                if base in path.parents:
                    rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
                    if spec.match_file(rel):
                        return True
            return False

        def label(path: Path) -> str:
            return str(Path(name) / path.relative_to(root))

        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not ignored(here / d, True))
        if budget.full:  # past the cap: the files are counted (not opened, not resolved), up to a bound
            for file in files:
                if file != ".gitignore" and not ignored(here / file, False) and not budget.count_unread():
                    return pieces
            continue
        for link in (here / d for d in dirs if (here / d).is_symlink()):  # os.walk does not descend into these
            if not _inside(os.path.realpath(link), within) and budget.first_note(os.path.realpath(link)):
                pieces.append(Piece(label(link), None, out_of))
        for file in sorted(files):
            path = here / file
            if file == ".gitignore" or ignored(path, False):
                continue
            if not path.is_file():  # a pipe or socket is left out silently; a dangling link is said
                if path.is_symlink() and not path.exists() and budget.first_note(os.path.realpath(path)):
                    pieces.append(Piece(label(path), None, "broken symlink"))
                continue
            real = os.path.realpath(path)
            if not _inside(real, within):
                if budget.first_note(real):
                    pieces.append(Piece(label(path), None, out_of))
            elif budget.full:
                if not budget.count_unread():
                    return pieces
            elif budget.first_time(real):
                pieces.append(_file(Path(real), label(path), budget, explicit=False))
    return pieces


def run_command(command: str, *, limit: float = COMMAND_TIMEOUT) -> str:
    """`!command`: run without a shell, its stdout read no further than the -f total and for no
    longer than `limit` (`!yes` was captured whole for 30 s: gigabytes of memory). It runs in a
    session of its own, so the whole group is stopped at the limit: `sh -c "sleep 300 & echo hi"`
    left the sleep running (and holding stdout open) after its shell was killed. A failure
    quotes the end of its stderr, and says so when shell syntax was passed to a command."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:  # an unclosed quote: it was "internal error", exit 1
        raise UsageError(f"-f !{command}: {exc}", hint="close the quote, e.g. -f '!git log --format=\"%h %s\"'") from None
    if not argv:
        raise UsageError("-f ! needs a command, e.g. -f '!git diff'")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except FileNotFoundError:
        raise UsageError(f"command not found: {argv[0]}", hint=_no_shell(command, argv) or "check the command after !") from None
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}", hint="check the command after !") from None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        _kill_group(proc.pid)

    assert proc.stdout is not None and proc.stderr is not None
    stderr = _Tail(proc.stderr)
    timer = threading.Timer(limit, stop)
    timer.start()
    try:
        try:
            out = proc.stdout.read(TOTAL_CAP + 1)  # until that much, or the command closes its stdout
            if len(out) > TOTAL_CAP:
                raise UsageError(f"`{command}` printed more than {byte_size(TOTAL_CAP)}", hint="narrow what it prints")
            proc.wait()
        except BaseException:  # over the cap, or Ctrl-C (which, in its own session, it did not get)
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            proc.stdout.close()
    finally:
        timer.cancel()
    if timed_out.is_set():
        raise UsageError(f"`{command}` ran longer than {limit:g} s", hint="run it by hand and pipe its output")
    if proc.returncode != 0:
        said = "; ".join(stderr.last_lines())
        raise UsageError(f"`{command}` failed (exit {proc.returncode})" + (f": {said}" if said else ""),
                         hint=_no_shell(command, argv) or "run it by hand to see why")
    text = _decode(out)
    if text is None:
        raise UsageError(f"`{command}` printed binary data", hint="pass text output only")
    return text


SHELL_OPERATORS = frozenset({"|", "||", "|&", "&", "&&", ";", ">", ">>", "<", "<<", "2>", "2>&1", "&>"})


def _no_shell(command: str, argv: list[str]) -> str | None:
    """The hint for a command that was given shell syntax (`!ls | wc -l` ran `ls` with `|`,
    `wc` and `-l` as its arguments), or None."""
    syntax = next((a for a in argv[1:] if a in SHELL_OPERATORS or a.startswith("$") or "`" in a), None)
    if syntax is None:
        return None
    wrapped = f"-f '!sh -c \"{command}\"'" if not any(c in command for c in "'\"\\$`") else "-f '!sh -c \"…\"'"
    return f"-f runs a command without a shell, so `{syntax}` went to {argv[0]} as an argument: use {wrapped}"


class _Tail:
    """The end of a command's stderr, read on a thread of its own: a command that writes much
    to stderr never stalls on a full pipe, and only the last lines are kept to quote."""

    KEEP = 4096

    def __init__(self, stream: IO[bytes]) -> None:
        self._data = b""
        self._thread = threading.Thread(target=self._read, args=(stream,), name="command-stderr", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                self._data = (self._data + chunk)[-self.KEEP:]

    def last_lines(self, n: int = 3) -> list[str]:
        """Sanitized: they are shown on the terminal (a background child still writing is not waited for long)."""
        self._thread.join(1.0)
        text = sanitize(self._data.decode("utf-8", "replace"))
        return [line.strip()[:200] for line in text.splitlines() if line.strip()][-n:]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group has already ended
        os.killpg(pgid, signal.SIGKILL)
