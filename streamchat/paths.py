"""Where streamchat keeps its files: the config, data and cache directories (platformdirs).

A leaf module, so that anything (config, keys, the log) can ask without importing the others.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "streamchat"


def user_path(text: str) -> Path:
    """A path as the user typed it, `~` and `~user` expanded. Not `Path.expanduser()`: for a
    user that does not exist it raises RuntimeError ("internal error", exit 1; the REPL quit),
    where os.path leaves the name as it is and the file is then simply not found."""
    return Path(os.path.expanduser(text))


def config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP)


def data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP)


def cache_dir() -> Path:
    """What can be rebuilt at any time (the prices of the models used, cost.py)."""
    from platformdirs import user_cache_path

    return user_cache_path(APP)
