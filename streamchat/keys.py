"""API keys in the OS keyring (`streamchat keys set openai`), with a 0600 file where there is none.

Resolution order for a provider's key (config.ProviderConfig.resolve_key): `api_key_cmd`, then
`api_key_env` / the SDK's variable, then the keyring, then a config-file `api_key` (warned about).
`keyring` is imported only when the earlier sources gave nothing, so start-up stays fast.

Loading the keyring and picking its backend costs 0.2-1.8 s here (#34), paid on every start of a
provider with no key in the environment: a local server (Ollama, vLLM, llama.cpp) usually takes
none. So `set_key` also writes the provider's name (never the key) to `stored_keys`, and a provider
whose server is on this machine asks the keyring only when its name is there (`listed`).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

SERVICE = "streamchat"
_warned = False


def _file() -> Path:
    from streamchat.paths import config_dir

    return config_dir() / "keys.json"


def _names_file() -> Path:
    from streamchat.paths import config_dir

    return config_dir() / "stored_keys"


def _names() -> set[str]:
    try:
        return set(_names_file().read_text(encoding="utf-8").split())
    except OSError:
        return set()


def _write_names(names: set[str]) -> None:
    from streamchat.private_files import write_private

    write_private(_names_file(), "".join(f"{name}\n" for name in sorted(names)))


def listed(provider: str) -> bool:
    """Whether `keys set` stored a key for `provider` (since stored_keys was kept: older keys are not
    listed). Reading this file costs nothing next to loading the keyring."""
    return provider in _names()


def _backend() -> Any | None:
    """The keyring backend, or None where it would not keep a secret safely (none available, or a
    plaintext one picked automatically). A backend named in PYTHON_KEYRING_BACKEND is always used."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    if "PYTHON_KEYRING_BACKEND" not in os.environ and type(backend).__module__.startswith("keyrings.alt"):
        return None
    return backend


def where() -> str:
    """Where keys are stored on this machine, for messages."""
    backend = _backend()
    return f"keyring ({type(backend).__name__})" if backend is not None else f"file {_file()} (mode 0600)"


def _warn_file(warn: Any) -> None:
    global _warned
    if not _warned and warn is not None:
        _warned = True
        warn(f"warning: no OS keyring here; keys are kept in {_file()} (mode 0600)")


def _read_file() -> dict[str, str]:
    path = _file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}


def _write_file(data: dict[str, str]) -> None:
    from streamchat.private_files import write_private

    write_private(_file(), json.dumps(data))


def get(provider: str) -> str | None:
    backend = _backend()
    if backend is not None:
        value = backend.get_password(SERVICE, provider)
        return str(value) if value else None
    return _read_file().get(provider)


def set_key(provider: str, key: str, warn: Any = None) -> str:
    """Store the key; returns where it went."""
    backend = _backend()
    if backend is not None:
        backend.set_password(SERVICE, provider, key)
    else:
        _warn_file(warn)
        data = _read_file()
        data[provider] = key
        _write_file(data)
    with contextlib.suppress(OSError):  # a read-only config directory: the key is stored all the same
        _write_names(_names() | {provider})
    return where()


def delete(provider: str) -> bool:
    if provider in _names():
        with contextlib.suppress(OSError):
            _write_names(_names() - {provider})
    backend = _backend()
    if backend is not None:
        if backend.get_password(SERVICE, provider) is None:
            return False
        backend.delete_password(SERVICE, provider)
        return True
    data = _read_file()
    if provider not in data:
        return False
    del data[provider]
    _write_file(data)
    return True


def mask(key: str) -> str:
    return f"{key[:3]}…{key[-4:]}" if len(key) > 12 else "…"
