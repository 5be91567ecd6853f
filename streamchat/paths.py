"""Where streamchat keeps its files: the config directory and the data directory (platformdirs).

A leaf module, so that anything (config, keys, the log) can ask without importing the others.
"""

from __future__ import annotations

from pathlib import Path

APP = "streamchat"


def config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP)


def data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP)
