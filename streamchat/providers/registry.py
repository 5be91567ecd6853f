"""What each provider type can do, as data: the one place config, cost, serve, `keys` and the
chat service ask instead of testing type names.

A spec names its adapter as "module:Class", imported only when a provider of that type is
built, so reading specs (every start, `--help`, Tab completion) imports no SDK. streamchat's
own types register here the way a plugin's do; an unknown type is looked up in the plugins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from streamchat.errors import ConfigError


@dataclass(frozen=True)
class ProviderSpec:
    """One provider type ("openai", "local", a plugin's "echo") and what its adapter takes."""

    type: str
    adapter: str  # "module.path:ClassName", imported when the provider is built
    needs_key: bool  # remote API with a key: `keys set` takes it, a missing one is an error
    key_env: str | None  # the variable hints name (OPENAI_API_KEY)
    base_url_env: str | None  # the variable the SDK reads a base URL from (OPENAI_BASE_URL)
    sdk_module: str | None  # what preimport imports in the background
    tools: bool
    images: bool
    pdfs: bool
    schemas: bool
    remote: bool  # the model runs elsewhere (serve offers it by name); else here, on a file
    priced: bool  # answers cost money: priced by the genai-prices database; else $0
    price_provider: str | None = None  # the database's provider id, for the built-in provider of this type
    default_model: str | None = None  # the model of the built-in provider named after the type
    key_envs: tuple[str, ...] = ()  # where the SDK reads the key, in its order, when not just key_env
    reasoning: bool = True  # takes --reasoning
    prefill: bool = False  # the API continues a final assistant message as it stands (a cut answer)
    window_option: str | None = None  # the provider option that is the model's context window (n_ctx)
    window_default: int | None = None  # its value when the option is not set

    @property
    def accepts(self) -> frozenset[str]:
        """The attachment kinds its adapter sends as they are ("image", "pdf")."""
        return frozenset(kind for kind, taken in (("image", self.images), ("pdf", self.pdfs)) if taken)

    @property
    def adapter_module(self) -> str:
        return self.adapter.partition(":")[0]


_SPECS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> None:
    """Add a provider type. Registering the same spec again is harmless; another spec for a type
    that exists is refused (a plugin cannot silently replace `openai`)."""
    known = _SPECS.get(spec.type)
    if known is not None and known != spec:
        raise ValueError(f"provider type '{spec.type}' is already registered")
    _SPECS[spec.type] = spec


def spec_for(provider_type: str) -> ProviderSpec:
    """The spec of `provider_type`; a type not registered yet is asked of the plugins first."""
    spec = _SPECS.get(provider_type)
    if spec is None:
        _load_plugin(provider_type)
        spec = _SPECS.get(provider_type)
    if spec is None:
        raise ConfigError(f"unknown provider type '{provider_type}'",
                          hint=f"use one of: {', '.join(_SPECS)} (or install the plugin that adds it)")
    return spec


def _load_plugin(provider_type: str) -> None:
    """Let the plugins register `provider_type` (streamchat.plugins, when it is there)."""
    try:
        load = importlib.import_module("streamchat.plugins").load_provider
    except (ImportError, AttributeError):
        return
    found = load(provider_type)
    if isinstance(found, ProviderSpec):
        register(found)


def all_specs() -> tuple[ProviderSpec, ...]:
    """Every type registered so far (plugin types once something used them)."""
    return tuple(_SPECS.values())


register(ProviderSpec("openai", "streamchat.providers.openai:OpenAIProvider", needs_key=True,
                      key_env="OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL", sdk_module="openai",
                      tools=True, images=True, pdfs=True, schemas=True, remote=True, priced=True,
                      price_provider="openai", default_model="gpt-4o-mini"))
register(ProviderSpec("anthropic", "streamchat.providers.anthropic:AnthropicProvider", needs_key=True,
                      key_env="ANTHROPIC_API_KEY", base_url_env="ANTHROPIC_BASE_URL", sdk_module="anthropic",
                      tools=True, images=True, pdfs=True, schemas=True, remote=True, priced=True,
                      price_provider="anthropic", default_model="claude-sonnet-4-5", prefill=True))
register(ProviderSpec("local", "streamchat.providers.local:LocalProvider", needs_key=False, key_env=None,
                      base_url_env=None, sdk_module=None, tools=False, images=False, pdfs=False, schemas=True,
                      remote=False, priced=False, default_model="smollm2", reasoning=False,
                      window_option="n_ctx", window_default=4096))
register(ProviderSpec("gemini", "streamchat.providers.gemini:GeminiProvider", needs_key=True,
                      key_env="GEMINI_API_KEY", key_envs=("GOOGLE_API_KEY", "GEMINI_API_KEY"),  # the SDK's order
                      base_url_env="GOOGLE_GEMINI_BASE_URL", sdk_module="google.genai",
                      tools=True, images=True, pdfs=True, schemas=True, remote=True, priced=True,
                      price_provider="google", default_model="gemini-2.5-flash"))
