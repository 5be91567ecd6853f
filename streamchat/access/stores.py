"""Which store `--state` names: a Redis URL, a SQLite file (`sqlite:PATH`, or a path: `/srv/keys.db`,
`./keys.db`, `~/keys.db`, `keys.db`), or by default `access.db` in the data dir.
A malformed URL is a usage error before anything is opened; a store that does not answer, StateUnavailable."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from streamchat.access.state import AccessState
from streamchat.errors import UsageError, mask_url

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def default_path() -> Path:
    from streamchat.config import data_dir

    return data_dir() / "access.db"


def check_url(url: str | None) -> str | None:
    """A malformed `--state` is a usage error before anything is opened."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        try:
            port = parts.port
        except ValueError:
            port = -1
        db = parts.path.lstrip("/")
        if not parts.hostname or port == -1 or (db and not db.isdigit()) or parts.query or parts.fragment:
            raise UsageError(f"'{mask_url(url)}' is not a Redis URL", hint="use redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0")
        return url
    if parts.scheme == "sqlite" and parts.path:
        return "sqlite:" + str(Path(parts.path).expanduser())
    if not parts.scheme and ("/" in url or url.startswith("~") or url.endswith(SQLITE_SUFFIXES)):
        # a file path, as a user types one; a bare word (`--state redis`, half a URL) stays an error, or
        # a typo would keep keys in a local file while the servers read Redis
        return "sqlite:" + str(Path(url).expanduser())
    raise UsageError(f"--state must be a redis:// URL, a SQLite file's PATH (with a / or ending .db) or sqlite:PATH, "
                     f"not '{mask_url(url)}'",
                     hint="e.g. --state redis://127.0.0.1:6379/0 or --state ./keys.db; leave it out for access.db in the data dir")


def open_state(url: str | None = None) -> AccessState:
    """The store `url` names (`--state`, $STREAMCHAT_STATE; else SQLite in the data dir), checked to answer."""
    url = check_url(url)
    if url and url.startswith(("redis://", "rediss://")):
        from streamchat.access.redis_state import RedisState

        return RedisState(url)
    from streamchat.access.sqlite_state import SqliteState

    return SqliteState(Path(url.removeprefix("sqlite:")) if url else default_path())
