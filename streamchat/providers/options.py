"""Provider request options (`-o NAME=VALUE`, config, roles, REPL `/set`): one checker for all.

Each adapter declares the options its API takes as data (`OPTIONS` beside the adapter: name,
type, range, API field), so adding one is a line, and the command line, the config file, a role,
the REPL and the Python API all check a value the same way: text from the command line is parsed
into the API's type (`seed=7` an int, `stop=END` a list), typed values from TOML or JSON are
checked as they are. Pure functions; the adapter modules are imported only to read their table.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from streamchat.errors import StreamchatError, UsageError

if TYPE_CHECKING:
    from streamchat.config import Settings

Kind = Literal["float", "int", "bool", "str", "choice", "stops", "object"]
Params = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Option:
    """One request option of a provider's API."""

    name: str
    kind: Kind
    help: str = ""
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[str, ...] = ()
    field: str | None = None  # the API's name for it, when it differs
    most: int = 0  # "stops": at most this many strings (0: no limit)

    @property
    def api_field(self) -> str:
        return self.field or self.name

    def expected(self) -> str:
        """What a value must be, in words (the error message and `models --options`)."""
        if self.kind in ("float", "int"):
            what = "a number" if self.kind == "float" else "a whole number"
            if math.isfinite(self.low) and math.isfinite(self.high):
                return f"{what} from {_end(self.low)} to {_end(self.high)}"
            if math.isfinite(self.low):
                return f"{what} ≥ {self.low:g}"
            return what
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "stops":
            return f"a string or a JSON list of {f'up to {self.most} ' if self.most else ''}strings"
        return {"bool": "true or false", "str": "a string", "object": "a JSON object"}[self.kind]


def _end(value: float) -> str:
    """A range's end as written: 2147483647, not 2.14748e+09; 0.1 as 0.1."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def table(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


MAX_TOKENS = 2**31 - 1  # the largest max_tokens taken anywhere (flag, config, role, /set, serve, the Python API):
# servers read it as a 32-bit int

# What every provider takes beside its table: the REPL's /set checks them as the flags do, and serve
# and the Python API check a request's max_tokens through the same Option (`check_max_tokens`).
SAMPLING = table(
    Option("temperature", "float", "sampling temperature", 0, 2),
    Option("max_tokens", "int", "longest answer in tokens", 1, MAX_TOKENS),
)
REASONING = ("off", "low", "medium", "high")


class Text(str):
    """A value as typed (-o, /set): parsed into the option's type. A plain str (TOML, JSON, the
    Python API) is already typed: `stop = "[x"` there is that string, not broken JSON."""


class BadValue(ValueError):
    """A value that is not what its option takes."""


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def coerce(option: Option, value: Any) -> Any:
    """`value` as the API takes it: Text (the command line, /set) is parsed, typed values (TOML,
    JSON, the Python API) are checked. Raises BadValue."""
    kind, text = option.kind, str(value) if isinstance(value, Text) else None
    if kind in ("str", "choice") and isinstance(value, str):
        text = str(value)
    if kind == "str":
        if text is None:
            raise BadValue(option.expected())
        return text
    if kind == "choice":
        if text not in option.choices:
            raise BadValue(option.expected())
        return text
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if text is not None and text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise BadValue(option.expected())
    if kind in ("float", "int"):
        return _number(option, value)
    if kind == "object":
        parsed = _json(text, option) if text is not None else value
        if not isinstance(parsed, dict):
            raise BadValue(option.expected())
        if not _finite(parsed):  # NaN or infinity (1e999): no JSON body or role file can carry it
            raise BadValue(option.expected() + " with finite numbers (no NaN or Infinity)")
        return parsed
    parsed = _json(text, option) if text is not None and text.lstrip().startswith("[") else value
    stops = [parsed] if isinstance(parsed, str) else parsed
    if not isinstance(stops, (list, tuple)) or not stops or (option.most and len(stops) > option.most) \
            or not all(isinstance(s, str) and s for s in stops):
        raise BadValue(option.expected())
    return tuple(str(s) for s in stops)


def _number(option: Option, value: Any) -> float | int:
    number: float | int
    if isinstance(value, Text):
        try:
            number = int(value) if option.kind == "int" else float(value)
        except ValueError:
            raise BadValue(option.expected()) from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)) \
            or option.kind == "int" and not isinstance(value, int):
        raise BadValue(option.expected())
    else:
        number = value if option.kind == "int" else float(value)
    if not math.isfinite(number) or not option.low <= number <= option.high:
        raise BadValue(option.expected())
    return number


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in `value` (an option's JSON). They passed the check, then the
    request's JSON encoder refused them ("unexpected error", exit 1) and --save-role wrote a role
    TOML cannot read. A walk, not a recursion: a value may nest as deep as json.loads allows."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, (list, tuple)):
            stack += item
    return True


def _json(text: str, option: Option) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise BadValue(option.expected() + " (valid JSON)") from None


def split_assignment(item: str, flag: str = "-o") -> tuple[str, str]:
    """`NAME=VALUE` → (NAME, VALUE); the value may hold `=` itself."""
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"{flag} {item!r} is not NAME=VALUE", hint=f"e.g. {flag} top_p=0.5")
    return name.strip(), Text(value)


def check(options: Mapping[str, Option], given: Iterable[tuple[str, Any]], *, provider: str,
          where: str = "", error: type[StreamchatError] = UsageError) -> Params:
    """Every (name, value) checked against `options`: typed, in the order given, a later name
    replacing an earlier one. An unknown name lists the names this provider takes; `where` says
    where the values came from in an error."""
    out: dict[str, Any] = {}
    prefix = f"{where}: " if where else "option "
    typed = where in ("", "/set")  # typed by the user (-o, /set): in the REPL, /set is how to give one
    for name, value in given:
        option = options.get(name)
        if option is None:
            names = ", ".join(sorted(options)) or "none"
            raise error(f"{where + ': ' if where else ''}{provider} takes no option '{name}'",
                        hint=f"its options: {names} (streamchat models --options {provider})",
                        repl_hint=f"its options: {names} (/set NAME VALUE)" if typed else None)
        try:
            out[name] = coerce(option, value)
        except BadValue as exc:
            raise error(f"{prefix}{name} must be {exc}", hint=f"e.g. {name}={example(option)}",
                        repl_hint=f"e.g. /set {name} {example(option)}" if typed else None) from None
    return tuple(out.items())


def example(option: Option) -> str:
    """A value of the right type, for a hint."""
    if option.kind == "choice":
        return option.choices[0]
    return {"float": f"{max(option.low, 0):g}", "int": f"{max(option.low, 1):g}", "bool": "true",
            "str": "TEXT", "stops": '\'["END","STOP"]\'', "object": "'{}'"}.get(option.kind, "…")


def to_wire(options: Mapping[str, Option], params: Params) -> dict[str, Any]:
    """Checked params as the API's fields (a tuple of stops as a JSON list)."""
    return {options[name].api_field if name in options else name: list(value) if isinstance(value, tuple) else value
            for name, value in params}


def options_for(provider_type: str) -> dict[str, Option]:
    """The option table of an adapter type ("openai", "anthropic", "local"), without building it."""
    from streamchat.providers.registry import spec_for

    found: dict[str, Option] = importlib.import_module(spec_for(provider_type).adapter_module).OPTIONS
    return found


def typed_for(settings: Settings, spec: str | None, given: Iterable[tuple[str, Any]]) -> Params:
    """`given` checked and typed by the options of the provider `spec` resolves to (--save-role
    writes them typed, as the config holds them)."""
    given = tuple(given)
    if not given:
        return ()
    cfg, _model = settings.resolve(spec)
    return check(options_for(cfg.type), given, provider=cfg.name)
