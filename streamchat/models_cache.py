"""The model names `streamchat models` last found, kept for Tab completion and for resolving a bare
model name (`-m gpt-4o`) without asking any server."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from streamchat.errors import ConfigError
from streamchat.paths import data_dir
from streamchat.private_files import write_private


def models_cache_path() -> Path:
    return data_dir() / "models-cache.json"


def save_models_cache(names: list[str]) -> None:
    """What `streamchat models` found, for Tab completion (which never asks a server)."""
    with contextlib.suppress(OSError, ConfigError):  # a cache: not writing it costs nothing
        path = models_cache_path()
        known = set(load_models_cache())
        write_private(path, json.dumps(sorted(known | set(names))))


def load_models_cache() -> list[str]:
    try:
        data = json.loads(models_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    # a name with a control character (an escape sequence a server sent, cached before `models`
    # dropped them) must not reach a terminal on a Tab press
    return [n for n in data if isinstance(n, str) and n.isprintable()] if isinstance(data, list) else []
