"""Settings from flags, environment and TOML; validation and model resolution only.

Precedence: command-line flags > environment (STREAMCHAT_MODEL, ...) > config file >
built-in defaults.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from streamchat.errors import AuthError, ConfigError, UsageError, mask_url, remember_secret
from streamchat.paths import APP as APP  # re-exported: they lived here before paths.py
from streamchat.paths import config_dir as config_dir
from streamchat.paths import data_dir as data_dir
from streamchat.paths import user_path
from streamchat.providers.options import MAX_TOKENS as MAX_TOKENS  # one ceiling: config, flags, /set, serve
from streamchat.providers.registry import ProviderSpec, all_specs, spec_for

if TYPE_CHECKING:
    from streamchat.routing import Route

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL = "local:smollm2"


RICH_CODE_THEMES = ("ansi_dark", "ansi_light")  # Rich's own (rich.syntax.RICH_SYNTAX_THEMES): the terminal's palette


def check_code_theme(name: str) -> str | None:
    """Why `name` cannot colour code (None when it can): Rich's ansi_dark / ansi_light or a Pygments
    style. Pygments only, imported when a theme is set: settings never load the renderer."""
    if name in RICH_CODE_THEMES:
        return None
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound

    try:  # Rich itself would quietly fall back to Pygments' "default"
        get_style_by_name(name)
    except ClassNotFound:
        return f"unknown code_theme '{name}'"
    return None


def default_config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass(frozen=True)
class ProviderConfig:
    """One `[providers.NAME]` table; `type` picks the adapter."""

    name: str
    type: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_cmd: str | list[str] | None = None
    api_key: str | None = None
    default_model: str | None = None
    models: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    key_env_required: bool = False  # the config file named api_key_env: its absence is an error

    @property
    def spec(self) -> ProviderSpec:
        """What its type can do (providers/registry.py)."""
        return spec_for(self.type)

    @property
    def base_url_env(self) -> str | None:
        """The variable the official SDK would read the base URL from (OPENAI_BASE_URL…)."""
        return self.spec.base_url_env

    def key_envs(self) -> tuple[str, ...]:
        """The variables the key is read from: the config's api_key_env alone, or, for the SDK's own
        variable, every one the SDK reads, in its order (Gemini: GOOGLE_API_KEY, GEMINI_API_KEY)."""
        if self.api_key_env is None:
            return ()
        spec = self.spec
        if self.key_env_required or self.api_key_env != spec.key_env or not spec.key_envs:
            return (self.api_key_env,)
        return spec.key_envs

    def effective_base_url(self) -> tuple[str | None, str]:
        """(the URL requests go to, where it came from): the config, the SDK's variable, or its default."""
        if self.base_url:
            return self.base_url, "config"
        env = self.base_url_env
        if env and os.environ.get(env):
            return os.environ[env], env
        return None, "default"

    def on_this_machine(self) -> bool:
        """Whether requests go to a loopback address (localhost, 127.0.0.0/8, ::1): a local server."""
        base = self.effective_base_url()[0]
        if base is None:
            return False
        from urllib.parse import urlsplit

        try:
            host = urlsplit(base).hostname
        except ValueError:
            return False
        if host is None:
            return False
        if host == "localhost" or host.endswith(".localhost"):
            return True
        import ipaddress

        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def resolve_key(self) -> str | None:
        """The API key; never logged. Order: api_key_cmd, api_key_env (the SDK's variable), the keyring
        (`streamchat keys set`), a config-file api_key."""
        key = self.key_source()[0]
        if key:
            remember_secret(key)  # whatever reaches a terminal, a log or a client from now on is redacted
        return key

    def key_source(self) -> tuple[str | None, str]:
        """(the key, where it came from) — `keys list` shows the second."""
        if self.api_key_cmd:
            return _run_key_cmd(self.name, self.api_key_cmd), "command"
        for env in self.key_envs():
            if os.environ.get(env):
                return os.environ[env], f"env {env}"
        if self.spec.needs_key:
            from streamchat import keys

            # a server on this machine usually takes no key: the keyring (slow to load) only if `keys set` stored one
            stored = keys.get(self.name) if not self.on_this_machine() or keys.listed(self.name) else None
            if stored:
                return stored, "keyring"
        if self.api_key:
            return self.api_key, "config"
        return None, "none"

    def require_key(self) -> str | None:
        key = self.resolve_key()
        if key is None and self.key_env_required and self.api_key_env:
            raise AuthError(f"{self.api_key_env} is not set (api_key_env of [providers.{self.name}])",
                            hint=f"export {self.api_key_env}=…, or remove api_key_env from the config")
        if key is None and self.spec.needs_key and self.effective_base_url()[0] is None:
            env = self.api_key_env or self.spec.key_env
            raise AuthError(
                f"no API key for provider '{self.name}'",
                hint=f"run: streamchat keys set {self.name} — or set {env}, or api_key_cmd in [providers.{self.name}]",
            )
        return key or "not-needed"


def _run_key_cmd(name: str, cmd: str | list[str]) -> str:
    try:
        argv = cmd if isinstance(cmd, list) else shlex.split(cmd)
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"api_key_cmd for provider '{name}' cannot be read as a command ({exc})",
                          hint='write it as a list, e.g. api_key_cmd = ["pass", "show", "openai"]') from None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"api_key_cmd for provider '{name}' could not run: {type(exc).__name__}",
                          hint="check the command in your config") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise ConfigError(f"api_key_cmd for provider '{name}' failed (exit {out.returncode})",
                          hint="run the command by hand to see why")
    return out.stdout.strip()


@dataclass(frozen=True)
class McpServerConfig:
    """One `[mcp.NAME]` table: a stdio server (`command`, `args`, `env`, the shape Claude Desktop
    uses) or a streamable-HTTP one (`url`)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    timeout: float = 30.0  # seconds to wait for one call
    start_timeout: float = 60.0  # seconds to start (npx may download the server on its first run)


def _parse_mcp(name: str, table: Any, where: str) -> McpServerConfig:
    section = f"{where}[mcp.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{section} must be a table")
    from streamchat.function_tools import RESERVED  # here: only a config with [mcp] tables pays for it

    if name in RESERVED:
        raise ConfigError(f"{section}: a tool server cannot be named '{name}' (--approve {name} means every tool)",
                          hint="rename the table")
    unknown = set(table) - {"command", "args", "env", "url", "timeout", "start_timeout"}
    if unknown:
        raise ConfigError(f"{section}: unknown key '{sorted(unknown)[0]}'",
                          hint="use command, args, env, url, timeout, start_timeout")
    command, url = table.get("command"), table.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{section} needs either command (a stdio server) or url (streamable HTTP)")
    args, env = table.get("args", []), table.get("env", {})
    if command is not None and not isinstance(command, str) or url is not None and not isinstance(url, str):
        raise ConfigError(f"{section}: command and url are strings")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{section}: args is a list of strings")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ConfigError(f"{section}: env is a table of strings")
    waits = {}
    for key, default in (("timeout", 30.0), ("start_timeout", 60.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 3600:
            raise ConfigError(f"{section}: {key} must be seconds from 0.1 to 3600")
        waits[key] = float(value)
    return McpServerConfig(name, command, tuple(args), dict(env), url, **waits)


def _plugin_registers(name: str) -> bool:
    """Whether a plugin registers provider type `name`, from the installed metadata (no import)."""
    from streamchat.plugins import find

    return find("provider", name) is not None


def builtin_provider(spec: ProviderSpec) -> ProviderConfig:
    """The provider named after a type (`-m openai`, `-m echo:x`): its key variable, its default model."""
    return ProviderConfig(spec.type, spec.type, api_key_env=spec.key_env, default_model=spec.default_model)


_OLLAMA = ProviderConfig("ollama", "openai", base_url="http://127.0.0.1:11434/v1", default_model="llama3.2")
# One provider per registered type and Ollama's usual server; remote ones first, the local model last.
BUILTIN_PROVIDERS: dict[str, ProviderConfig] = dict(sorted(
    {**{spec.type: builtin_provider(spec) for spec in all_specs()}, "ollama": _OLLAMA}.items(),
    key=lambda item: not item[1].spec.remote))


@dataclass(frozen=True)
class Settings:
    path: Path | None = None
    default_model: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    retries: int = 2
    retry_max_wait: float = 20.0
    log: bool = True
    markdown: bool = True
    max_input_bytes: int = 4 * 1024 * 1024
    vi_mode: bool = False
    code_theme: str | None = None  # colours of code blocks: ansi_dark (default), ansi_light or a Pygments style
    providers: dict[str, ProviderConfig] = field(default_factory=lambda: dict(BUILTIN_PROVIDERS))
    aliases: dict[str, str] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # [roles.NAME] tables, checked by roles.py
    prices: dict[str, dict[str, float]] = field(default_factory=dict)  # [prices."provider:model"] $/M tokens
    mcp: dict[str, McpServerConfig] = field(default_factory=dict)  # [mcp.NAME] tool servers
    approve: tuple[str, ...] = ()  # tools that run without asking ("server:tool", "server" or "all")
    functions: tuple[str, ...] = ()  # Python files whose functions are tools, as --functions (relative to the config)
    tool_steps: int = 10  # tool-call rounds in one turn before it is stopped
    function_timeout: float = 60.0  # seconds a Python function's call may take before it is abandoned
    cache: bool = True  # mark prompt-cache breakpoints (Anthropic); `cache = false` or --no-cache: never
    routes: dict[str, Route] = field(default_factory=dict)  # [routes.NAME]: one name over several deployments

    def model_spec(self, flag: str | None) -> str:
        return flag or os.environ.get("STREAMCHAT_MODEL") or self.default_model or DEFAULT_MODEL

    def resolve(self, spec: str | None) -> tuple[ProviderConfig, str]:
        """`provider:model`, an alias, a provider name or a known model → (provider, model).

        Split at the first colon only: `openai:ft:gpt-4o:org` is provider `openai`,
        model `ft:gpt-4o:org`.
        """
        spec = self.expand(self.model_spec(spec))
        if spec in self.routes:
            return self.routes[spec].primary
        name, sep, model = spec.partition(":")
        if name not in self.providers and (sep or _plugin_registers(name)):
            with contextlib.suppress(ConfigError):  # a type a plugin adds: its provider of that name (`-m echo`)
                prov = builtin_provider(spec_for(name))
                return prov, model or self._provider_default(prov)
        if sep and name in self.providers:
            return self.providers[name], model or self._provider_default(self.providers[name])
        if not sep and name in self.providers:
            return self.providers[name], self._provider_default(self.providers[name])
        if spec.endswith(".gguf"):
            return self.providers["local"], spec
        return self._bare(spec)

    def expand(self, spec: str) -> str:
        """`spec` with aliases followed (a loop stops where it repeats)."""
        seen: set[str] = set()
        while spec in self.aliases and spec not in seen:
            seen.add(spec)
            spec = self.aliases[spec]
        return spec

    def route(self, spec: str | None) -> Route | None:
        """The route `spec` (or the default model) names, directly or through an alias."""
        return self.routes.get(self.expand(self.model_spec(spec))) if self.routes else None

    def _bare(self, model: str) -> tuple[ProviderConfig, str]:
        """A model name without a provider: the one provider offering it (in its `models`, as its
        default, or as `streamchat models` found it), else the default provider when its catalog
        (the price database) lists it; else an error naming the `provider:model` to type."""
        from streamchat.cost import catalog_knows
        from streamchat.models_cache import load_models_cache

        found = set(load_models_cache())
        offered = [p for p in self.providers.values()
                   if model in p.models or model == p.default_model or f"{p.name}:{model}" in found]
        if len(offered) == 1:
            return offered[0], model
        default_spec = self.model_spec(None)
        default = self.providers.get(self.aliases.get(default_spec, default_spec).partition(":")[0])
        if default is not None and (default in offered or not offered and catalog_knows(default, model)):
            return default, model
        forms = " or ".join(f"-m {p.name}:{model}" for p in
                            offered or [p for p in self.providers.values() if catalog_knows(p, model)])
        if len(offered) > 1:
            raise UsageError(f"'{model}' is offered by more than one provider", hint=f"say which: {forms}")
        known = ", ".join(sorted(self.providers))
        raise UsageError(f"unknown model '{model}'", hint=f"did you mean {forms}?" if forms else
                         f"use PROVIDER:MODEL with a provider of: {known}, or an alias from [aliases]")

    @staticmethod
    def _provider_default(prov: ProviderConfig) -> str:
        if prov.default_model:
            return prov.default_model
        if prov.models:
            return prov.models[0]
        raise UsageError(f"provider '{prov.name}' has no default model", hint=f"use {prov.name}:MODEL")


_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "default_model": str, "system": str, "temperature": (int, float), "max_tokens": int,
    "timeout": (int, float), "retries": int, "retry_max_wait": (int, float), "log": bool,
    "markdown": bool, "max_input_bytes": int, "vi_mode": bool, "approve": list, "tool_steps": int,
    "code_theme": str, "cache": bool, "functions": list, "function_timeout": (int, float),
}
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2), "max_tokens": (1, MAX_TOKENS), "timeout": (0.1, math.inf), "retries": (0, 20),
    "retry_max_wait": (0, math.inf), "max_input_bytes": (1, math.inf), "tool_steps": (1, 100),
    "function_timeout": (0.1, 86400),
}
_PROVIDER_KEYS = {"type", "base_url", "api_key_env", "api_key_cmd", "api_key", "default_model", "models"}


def load_settings(path: Path | None = None, *, warn: Callable[[str], None] | None = None) -> Settings:
    """Read the config file (explicit path, STREAMCHAT_CONFIG, or the user config dir)."""
    explicit = path or (Path(os.environ["STREAMCHAT_CONFIG"]) if os.environ.get("STREAMCHAT_CONFIG") else None)
    path = explicit or default_config_path()
    from streamchat.private_files import refuse_if_others_can_write

    refuse_if_others_can_write([config_dir(), path.absolute()])  # what they say runs as you (api_key_cmd)
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {path}", hint="fix --config / STREAMCHAT_CONFIG, or run `streamchat config init`")
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint="fix the file, or compare with config.example.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    settings = parse_settings(data, path)
    if warn is not None and _holds_key(data) and _loose_permissions(path):
        warn(f"warning: {path} holds an API key and is readable by others — run: chmod 600 {shlex.quote(str(path))}")
    return settings


def parse_settings(data: dict[str, Any], path: Path | None = None) -> Settings:
    where = f"{path}: " if path else ""
    values: dict[str, Any] = {"path": path}
    for key, value in data.items():
        if key in ("providers", "aliases", "roles", "prices", "mcp", "routes"):
            continue
        if key not in _TOP_KEYS:
            raise ConfigError(f"{where}unknown key '{key}'", hint="see config.example.toml for the keys")
        if not isinstance(value, _TOP_KEYS[key]) or (isinstance(value, bool) and _TOP_KEYS[key] is not bool):
            raise ConfigError(f"{where}'{key}' has the wrong type ({type(value).__name__})")
        if key in _RANGES:
            low, high = _RANGES[key]
            number = float(cast(float, value))
            if not (math.isfinite(number) and low <= number <= high):
                allowed = range_text(low, high, number)
                raise ConfigError(f"{where}'{key}' must be {allowed} (it is {value})",
                                  hint="fix the value in the config file, the same range as the flag")
        if key == "approve":
            if not all(isinstance(v, str) for v in cast(list[Any], value)):
                raise ConfigError(f"{where}'approve' is a list of tool names like \"files:read_file\"")
            value = tuple(cast(list[str], value))
        if key == "functions":
            value = _function_files(cast(list[Any], value), path, where)
        if key == "code_theme":
            problem = check_code_theme(cast(str, value))
            if problem:
                raise ConfigError(f"{where}{problem}", hint="use ansi_dark, ansi_light or a Pygments style such as "
                                  "monokai or github-dark")
        values[key] = value
    for table_key in ("providers", "aliases", "roles", "prices", "mcp", "routes"):
        if table_key in data and not isinstance(data[table_key], dict):  # `providers = 5` was "internal error"
            raise ConfigError(f"{where}'{table_key}' must be a table ([{table_key}] …), not {type(data[table_key]).__name__}",
                              hint="see config.example.toml")
    mcp = data.get("mcp") or {}
    if not isinstance(mcp, dict):
        raise ConfigError(f"{where}[mcp] must hold tables like [mcp.files]")
    values["mcp"] = {name: _parse_mcp(name, table, where) for name, table in mcp.items()}
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in (data.get("providers") or {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}[providers.{name}] must be a table")
        providers[name] = _parse_provider(name, table, providers.get(name), where)
    aliases = data.get("aliases") or {}
    if not all(isinstance(v, str) for v in aliases.values()):
        raise ConfigError(f"{where}[aliases] values must be strings like 'openai:gpt-4o'")
    roles = data.get("roles") or {}
    if not isinstance(roles, dict) or not all(isinstance(v, dict) for v in roles.values()):
        raise ConfigError(f"{where}[roles] must hold tables like [roles.shell]")
    prices = data.get("prices") or {}
    for name, table in prices.items():
        if not isinstance(table, dict) or not all(k in ("input", "output") and isinstance(v, (int, float))
                                                  and not isinstance(v, bool) and v >= 0 for k, v in table.items()):
            raise ConfigError(f"{where}[prices.\"{name}\"] takes input = and output = in dollars per million tokens")
    settings = Settings(providers=providers, aliases=dict(aliases), roles=dict(roles), prices=dict(prices), **values)
    if data.get("routes"):
        from streamchat.routing import parse_routes

        settings = replace(settings, routes=parse_routes(data["routes"], settings, where))
    return settings


def number_text(value: float) -> str:
    """A range's end as written: 2147483647, not 2.14748e+09; 0.1 as 0.1."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def range_text(low: float, high: float, value: float) -> str:
    """What a number must be: `from 0 to 2`; for a range whose top is a technical limit (none, or
    MAX_TOKENS) only the end `value` is past: `at least 1`, `at most 2147483647`."""
    if high < 1e9:
        return f"from {number_text(low)} to {number_text(high)}"
    return f"at least {number_text(low)}" if value < low else f"at most {number_text(high)}"


def _check_context(name: str, value: Any, where: str) -> None:
    """`context = N` or `context = { "MODEL" = N }` on a provider: a window of N tokens. `"big"` or
    `-1` were accepted and then ignored (no window known, no overflow check)."""
    def window(n: Any) -> bool:
        return isinstance(n, int) and not isinstance(n, bool) and n >= 1

    if not (window(value) or isinstance(value, dict) and value and all(window(n) for n in value.values())):
        raise ConfigError(f"{where}[providers.{name}] context must be a whole number of tokens (at least 1), "
                          "or a table of them by model", hint='e.g. context = 128000 or context = { "my-model" = 32000 }')


def _function_files(paths: list[Any], config: Path | None, where: str) -> tuple[str, ...]:
    """`functions = [...]`: Python files, `~` expanded, relative ones beside the config file."""
    if not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"{where}'functions' is a list of Python files like \"~/tools/fns.py\"")
    base = config.parent if config is not None else Path.cwd()
    return tuple(str(base / user_path(p)) for p in paths)


def _parse_provider(name: str, table: dict[str, Any], base: ProviderConfig | None, where: str) -> ProviderConfig:
    ptype = table.get("type", base.type if base else "openai")
    if not isinstance(ptype, str) or not any(s.type == ptype for s in all_specs()) and not _plugin_registers(ptype):
        try:  # a type a plugin adds is known from its metadata: its module is imported when the provider is used
            spec_for(str(ptype))
        except ConfigError as exc:
            raise ConfigError(f"{where}[providers.{name}] type '{ptype}' is not known", hint=exc.hint) from None
    known: dict[str, Any] = {k: v for k, v in table.items() if k in _PROVIDER_KEYS and k != "type"}
    for key, value in known.items():  # `base_url = 5` or `api_key_cmd = 5` was "internal error", exit 1
        strings = key in ("models", "api_key_cmd") and isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) and (key != "models") or strings):
            kind = "a list of model names" if key == "models" else \
                "a command: a list of words, or one string" if key == "api_key_cmd" else "a string"
            held = ", ".join(sorted({type(v).__name__ for v in value})) if isinstance(value, list) else ""
            given = f"a list holding {held}" if held else type(value).__name__  # never the value: it may be a key
            raise ConfigError(f"{where}[providers.{name}] {key} must be {kind}, not {given}", hint="see config.example.toml")
    if "api_key_env" in known:
        known["key_env_required"] = True
    options = {k: v for k, v in table.items() if k not in _PROVIDER_KEYS}
    if "context" in options:
        _check_context(name, options["context"], where)
    if "models" in known:
        known["models"] = tuple(known["models"])
    if base is not None and base.type == ptype:
        return replace(base, options={**base.options, **options}, **known)
    return ProviderConfig(name=name, type=ptype, options=options, **known)


def _holds_key(data: dict[str, Any]) -> bool:
    return any(isinstance(t, dict) and t.get("api_key") for t in (data.get("providers") or {}).values())


def _loose_permissions(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


SECRET_KEYS = ("api_key",)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with secrets masked, for `config show`."""
    out: dict[str, Any] = {k: getattr(settings, k) for k in _TOP_KEYS}
    out["config_file"] = str(settings.path) if settings.path else None
    out["resolved_default_model"] = settings.model_spec(None)
    provs: dict[str, Any] = {}
    for name, p in settings.providers.items():
        entry: dict[str, Any] = {"type": p.type}
        url, source = p.effective_base_url()
        if url:
            entry["base_url"], entry["base_url_from"] = mask_url(url), source
        for key in ("api_key_env", "api_key_cmd", "default_model"):
            if getattr(p, key):
                entry[key] = getattr(p, key)
        if p.models:
            entry["models"] = list(p.models)
        if p.api_key:
            entry["api_key"] = _mask(p.api_key)
        elif p.api_key_env:
            entry["api_key_set"] = bool(os.environ.get(p.api_key_env))
        entry.update(p.options)
        provs[name] = entry
    out["providers"] = provs
    out["aliases"] = settings.aliases
    out["routes"] = {name: {"models": [d.name for d in r.deployments], "strategy": r.strategy, "cooldown": r.cooldown}
                     for name, r in settings.routes.items()}
    out["approve"] = list(settings.approve)
    out["functions"] = list(settings.functions)
    out["mcp"] = {name: {k: v for k, v in (("command", m.command), ("args", list(m.args)), ("url", m.url),
                                           ("env", sorted(m.env)), ("timeout", m.timeout),
                                           ("start_timeout", m.start_timeout)) if v}
                  for name, m in settings.mcp.items()}  # env values may be secrets: names only
    return out


def _mask(secret: str) -> str:
    return "*** (set in file)"


def example_config() -> str:
    """The documented example config: shipped in the wheel, or read from a source checkout."""
    from importlib.resources import files

    packaged = files("streamchat").joinpath("config.example.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "config.example.toml").read_text(encoding="utf-8")
