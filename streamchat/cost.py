"""What a turn cost, from the genai-prices database (bundled, offline), or `[prices]` in the config.

An unknown model or price is None (shown as "—"), never a guess; the local model costs 0.

Importing the database costs ~0.2 s (its types, pydantic, its updater's HTTP client, 1.6 MB of
data): it came after a one-shot's last token, before its exit (#34). What a model's price is never
changes for one installed database, and within a tier it is linear in the token counts. So the
database is asked once per model for its rates (the price of a request with no tokens, and what
one more token of each kind adds), checked against the database at a larger turn, and kept in the
cache directory under the database's identity (`prices.json`). A turn is then priced as the
database prices it, in Decimal, exactly: it sums each count times its rate as well. A turn the
rates do not cover (past a tier's threshold, more cached than input tokens, prices that change on
a date) is priced by the database itself, as before.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
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
    rates = _rates(provider, model)
    if rates is None:
        return None
    exact = rates.price(inputs, outputs, stats.cached_tokens, stats.cache_write_tokens)
    if exact is not None:
        return float(exact)
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
    rates = _rates(provider, model)
    return rates.window if rates is not None else None


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
RATES_FILE = "prices.json"
CACHE_FORMAT = 1
CACHE_CAP = 256  # models kept in prices.json (misses included): past it the file starts anew


@dataclass(frozen=True)
class Rates:
    """One model in the database: its context window and, when its price is linear in the token
    counts, what a request costs (`fixed`) and what each token adds: input (every input token),
    output, and on top of input's rate a cached read's and a cache write's. `linear_to`: the rates
    hold up to that many input tokens (a tier starts past it); None: for any count."""

    window: int | None
    rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal] | None  # None: the database prices each turn
    linear_to: int | None = None

    def price(self, inputs: int, outputs: int, cached: int | None, written: int | None) -> Decimal | None:
        """The database's total for these counts, or None where the rates do not cover them."""
        cached, written = cached or 0, written or 0
        if self.rates is None or cached + written > inputs or (self.linear_to is not None and inputs > self.linear_to):
            return None
        fixed, per_input, per_output, per_read, per_write = self.rates
        return fixed + per_input * inputs + per_output * outputs + per_read * cached + per_write * written

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "rates": None if self.rates is None else [str(r) for r in self.rates],
                "linear_to": self.linear_to}

    @classmethod
    def from_json(cls, data: Any) -> Rates | None:
        if not isinstance(data, dict):
            return None
        window, rates, linear_to = data.get("window"), data.get("rates"), data.get("linear_to")
        if not (window is None or isinstance(window, int)) or not (linear_to is None or isinstance(linear_to, int)):
            return None
        if rates is not None:
            if not isinstance(rates, list) or len(rates) != 5 or not all(isinstance(r, str) for r in rates):
                return None
            try:  # a damaged cache ("x", "NaN") is not read: the database prices the turn
                values = tuple(Decimal(rate) for rate in rates)
            except InvalidOperation:
                return None
            if not all(value.is_finite() for value in values):
                return None
            return cls(window, values, linear_to)  # type: ignore[arg-type]  # five, checked above
        return cls(window, None, linear_to)


_MISS = Rates(None, None, -1)  # the database does not know the model
_RATES: dict[tuple[str | None, str], Rates] = {}
_cache: dict[str, Any] | None = None  # prices.json as read, for this database


def _rates(provider: ProviderConfig, model: str) -> Rates | None:
    """The model's rates (None: not in the database): this process's, the cache's, or the database's."""
    provider_id = _price_id(provider)
    if provider_id is None and provider.base_url is not None:
        return None
    key = (provider_id, model)
    if key in _UNKNOWN:
        return None
    found = _RATES.get(key)
    if found is None:
        found = _cached(key)
        if found is None:
            found = _probe(provider_id, model)
            if found is None:  # no database installed
                return None
            _keep(key, found)
        if found == _MISS:
            if len(_UNKNOWN) < UNKNOWN_CAP:
                _UNKNOWN.add(key)
            return None
        _RATES[key] = found
    return found


def _probe(provider_id: str | None, model: str) -> Rates | None:
    """The model's rates, from the database (imported here); _MISS when it does not know the model."""
    try:
        from genai_prices import Usage, calc_price
        from genai_prices.types import ModelPrice, TieredPrices
    except ImportError:
        return None

    def total(inputs: int = 0, outputs: int = 0, cached: int = 0, written: int = 0) -> Decimal:
        usage = Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cached, cache_write_tokens=written)
        return Decimal(calc_price(usage, model_ref=model, provider_id=provider_id).total_price)

    try:
        found = calc_price(Usage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider_id)
    except (LookupError, ValueError):
        return _MISS
    window = found.model.context_window if isinstance(found.model.context_window, int) else None
    prices = found.model.prices
    if not isinstance(prices, ModelPrice):  # prices that change on a date: the database prices each turn
        return Rates(window, None)
    starts = [tier.start for value in vars(prices).values() if isinstance(value, TieredPrices) for tier in value.tiers]
    linear_to = min(starts) if starts else None
    try:
        fixed = Decimal(found.total_price)
        per_input = total(1) - fixed
        rates = Rates(window, (fixed, per_input, total(outputs=1) - fixed, total(1, cached=1) - fixed - per_input,
                               total(1, written=1) - fixed - per_input), linear_to)
        inputs = min(150_007, linear_to if linear_to is not None else 150_007)
        check = (inputs, 7_001, inputs // 3, inputs // 5)
        if rates.price(*check) != total(*check):  # not linear after all: the database prices each turn
            return Rates(window, None)
    except ValueError:
        return Rates(window, None)
    return rates


def _database() -> str | None:
    """Which price database is installed (its files' sizes and times), without importing it."""
    from importlib.machinery import PathFinder
    from pathlib import Path

    spec = PathFinder.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent
    try:
        stats = [(folder / name).stat() for name in ("__init__.py", "data.py", "types.py")]
    except OSError:
        return None
    return f"{folder}|" + "|".join(f"{st.st_size}:{st.st_mtime_ns}" for st in stats)


def _cache_path() -> Any:
    from streamchat.paths import cache_dir

    return cache_dir() / RATES_FILE


def _read_cache() -> dict[str, Any]:
    """prices.json's models when it was written for the installed database, else none."""
    global _cache
    if _cache is None:
        _cache = {}
        database = _database()
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(_cache_path().read_text(encoding="utf-8"))
            if (isinstance(data, dict) and data.get("format") == CACHE_FORMAT and database is not None
                    and data.get("database") == database and isinstance(data.get("models"), dict)):
                _cache = data["models"]
    return _cache


def _entry(key: tuple[str | None, str]) -> str:
    return f"{key[0] or ''}\t{key[1]}"


def _cached(key: tuple[str | None, str]) -> Rates | None:
    models = _read_cache()
    if _entry(key) not in models:
        return None
    data = models[_entry(key)]
    return _MISS if data is None else Rates.from_json(data)


def _keep(key: tuple[str | None, str], rates: Rates) -> None:
    """Add the model to prices.json (best effort: a read-only cache only costs the next run the lookup).
    Written as private_files writes (0700 directories, a 0600 file renamed into place), which this
    leaf cannot import."""
    import os
    import tempfile

    database = _database()
    if database is None:
        return
    models = _read_cache()
    if len(models) >= CACHE_CAP:
        models.clear()
    models[_entry(key)] = None if rates is _MISS else rates.to_json()
    path = _cache_path()
    with contextlib.suppress(OSError):
        missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
        for folder in reversed(missing):
            os.mkdir(folder, 0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"format": CACHE_FORMAT, "database": database, "models": models}))
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise


def _price_id(provider: ProviderConfig) -> str | None:
    """The database's id of the vendor behind the built-in provider of a type (`openai`, `gemini` →
    "google"); None for other providers (another server, or prices matched by model only)."""
    spec = provider.spec
    return spec.price_provider if provider.name == spec.type else None


def catalog_knows(provider: ProviderConfig, model: str) -> bool:
    """Whether the bundled database lists `model` for this vendor (`-m gpt-4o` → openai)."""
    return _price_id(provider) is not None and _rates(provider, model) is not None


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
