"""What a turn cost, from the genai-prices database (bundled, offline), or `[prices]` in the config.

An unknown model or price is None (shown as "—"), never a guess; the local model costs 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: cost is a leaf, so config (which asks `catalog_knows`) and events may import it
    from streamchat.config import ProviderConfig, Settings
    from streamchat.events import Stats


def turn_cost(settings: Settings, provider: ProviderConfig, model: str, stats: Stats) -> float | None:
    if not provider.spec.priced:
        return 0.0
    if stats.input_tokens is None and not stats.tokens:
        return None
    inputs, outputs = stats.input_tokens or 0, stats.tokens
    configured = settings.prices.get(f"{provider.name}:{model}") or settings.prices.get(model)
    if configured is not None:
        return (inputs * configured.get("input", 0.0) + outputs * configured.get("output", 0.0)) / 1_000_000
    price = _lookup(provider, model, inputs, outputs, stats.cached_tokens, stats.cache_write_tokens)
    return None if price is None else float(price.total_price)


SMALLEST_WINDOW = 2048  # tokens: no hosted chat model takes fewer


def _configured_window(provider: ProviderConfig, model: str) -> int | None:
    """`context = N` on the provider (every model), or `context = { "MODEL" = N }` (those models)."""
    configured = provider.options.get("context")
    if isinstance(configured, dict):
        configured = configured.get(model)
    return configured if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0 else None


def window_from_database(provider: ProviderConfig, model: str) -> bool:
    """Whether the model's window would come from the price database (~45 ms to load), not the config."""
    spec = provider.spec
    return spec.priced and spec.window_option is None and _configured_window(provider, model) is None


def context_window(settings: Settings, provider: ProviderConfig, model: str) -> int | None:
    """Tokens the model takes: `context` on its provider (for every model or per model), the option
    its type reads the window from (the local model's n_ctx), or the database's."""
    configured = _configured_window(provider, model)
    if configured is not None:
        return configured
    spec = provider.spec
    if spec.window_option is not None:
        n_ctx = provider.options.get(spec.window_option, spec.window_default)
        return n_ctx if isinstance(n_ctx, int) else None
    if not spec.priced:
        return None
    found = _lookup(provider, model, 0, 0, None)
    window = getattr(found.model, "context_window", None) if found is not None else None
    return window if isinstance(window, int) else None


def _lookup(provider: ProviderConfig, model: str, inputs: int, outputs: int, cached: int | None,
            written: int | None = None) -> Any:
    """The database's price calculation for `model` (its `model` carries the context window), or
    None: an unknown model, or a self-hosted / third-party server whose prices are not the vendor's.
    `inputs` counts all input; of it, `cached` tokens were read from the prompt cache and `written`
    written to it, each at the model's own rate (Anthropic: a tenth and 1.25× of input)."""
    provider_id = _price_id(provider)
    if provider_id is None and provider.base_url is not None:
        return None
    if (provider_id, model) in _UNKNOWN:  # a miss scans the whole database: once per model is enough
        return None
    try:
        from genai_prices import Usage, calc_price

        return calc_price(Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cached,
                                cache_write_tokens=written), model_ref=model, provider_id=provider_id)
    except (LookupError, ValueError, ImportError):
        if len(_UNKNOWN) < UNKNOWN_CAP:  # serve resolves any name a client sends: the memo must not grow forever
            _UNKNOWN.add((provider_id, model))
        return None


_UNKNOWN: set[tuple[str | None, str]] = set()
UNKNOWN_CAP = 1024


def _price_id(provider: ProviderConfig) -> str | None:
    """The database's id of the vendor behind the built-in provider of a type (`openai`, `gemini` →
    "google"); None for other providers (another server, or prices matched by model only)."""
    spec = provider.spec
    return spec.price_provider if provider.name == spec.type else None


def catalog_knows(provider: ProviderConfig, model: str) -> bool:
    """Whether the bundled database lists `model` for this vendor (`-m gpt-4o` → openai)."""
    return _price_id(provider) is not None and _lookup(provider, model, 0, 0, None) is not None


def estimate_tokens(text: str) -> int:
    """A rough count for text not yet sent (about 4 characters a token in English and code)."""
    return len(text) // 4 + 1


def short(tokens: int) -> str:
    return f"{tokens / 1000:.1f}".removesuffix(".0") + "k" if tokens >= 1000 else str(tokens)  # 12.4k, 128k


def money(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"
