"""Routes: one model name spread over several deployments, with fallback before the first token.

A `[routes.NAME]` table names deployments (`provider:model`s of one API type) and a strategy.
Each request asks the route's `Router` for an order to try them in: round-robin rotates,
least-busy takes the fewest answers in flight (ties in rotation order), and a deployment that
failed before its first token (connect error, 5xx, 429) is cooled down — tried only after the
others — for the route's cooldown. The state lives in this process, so the CLI's REPL, serve's
requests and `GET /health` share it; serve's workers (`--workers N`, `--state`, `--keys`) also
share the cooldowns through the state store (`share_cooldowns`), so every worker and every server on
it skips a deployment one of them saw fail (read at most every SHARED_READ_S). After the first token nothing is switched: the error
surfaces as it would from the deployment alone, so no answer is shown twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from streamchat import cancel as cancellation
from streamchat.errors import ConfigError, StreamchatError
from streamchat.events import Event, ReasoningDelta, TextDelta, ToolCall, ToolCallStart
from streamchat.providers.registry import all_specs

if TYPE_CHECKING:  # config imports this module to parse [routes]: its types only, or the two import each other
    from streamchat.config import ProviderConfig, Settings
    from streamchat.providers.base import ChatRequest, EventStream, Provider

log = logging.getLogger("streamchat.routing")

STRATEGIES = ("least-busy", "round-robin")
DEFAULT_COOLDOWN_S = 30.0
SHARED_READ_S = 0.5  # how stale a router's view of the other processes' cooldowns may be
_FIRST_TOKEN = (TextDelta, ReasoningDelta, ToolCallStart, ToolCall)  # what a client may already have seen


@dataclass(frozen=True)
class Deployment:
    """One place a route's requests may go: a configured provider and a model on it."""

    provider: ProviderConfig
    model: str

    @property
    def name(self) -> str:
        return f"{self.provider.name}:{self.model}"


@dataclass(frozen=True)
class Route:
    name: str
    deployments: tuple[Deployment, ...]
    strategy: str = "least-busy"
    cooldown: float = DEFAULT_COOLDOWN_S
    section: str = ""  # "config.toml: [routes.NAME]", for an error found when the route is first used

    def check_remote(self) -> None:
        """Every deployment runs elsewhere: checked at load for the types already known, and here,
        when the route is first used, for a plugin's (its spec is its module: loading a config
        imports no plugin)."""
        for deployment in self.deployments:
            _check_remote(deployment.provider, deployment.name, self.section or f"[routes.{self.name}]")

    @property
    def primary(self) -> tuple[ProviderConfig, str]:
        """The first deployment: whose option table, context window and price a request is checked by
        before it goes out (all deployments share one API type)."""
        first = self.deployments[0]
        return first.provider, first.model


# -- config ------------------------------------------------------------------------------------

def parse_routes(tables: Any, settings: Settings, where: str) -> dict[str, Route]:
    """`[routes.NAME]` tables → routes, each deployment resolved now: a route that cannot work is a
    ConfigError naming the table at start, not a failure at its first request (but for a plugin
    type's remoteness, which would import the plugin: `Route.check_remote`, at first use)."""
    if not tables:
        return {}
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}[routes] must hold tables like [routes.team]")
    return {name: _parse_route(name, table, settings, f"{where}[routes.{name}]") for name, table in tables.items()}


def _parse_route(name: str, table: Any, settings: Settings, section: str) -> Route:
    if not isinstance(table, dict):
        raise ConfigError(f"{section} must be a table", hint='e.g. models = ["a:gpt-4o-mini", "b:gpt-4o-mini"]')
    unknown = sorted(set(table) - {"models", "strategy", "cooldown"})
    if unknown:
        raise ConfigError(f"{section}: unknown key '{unknown[0]}'", hint="use models, strategy, cooldown")
    if not name.strip():
        raise ConfigError(f"{section}: a route needs a name", hint="e.g. [routes.team]")
    if ":" in name:  # -m PROVIDER:MODEL would silently reach the route instead of the deployment
        raise ConfigError(f"{section}: the name '{name}' reads as provider:model",
                          hint="name the route without ':'")
    if name in settings.aliases or name in settings.providers:
        kind = "an alias" if name in settings.aliases else "a provider"
        raise ConfigError(f"{section}: the name '{name}' is also {kind}, so -m {name} would be ambiguous",
                          hint="rename the route")
    models = table.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{section}: models must be a non-empty list of \"provider:model\" strings")
    strategy = table.get("strategy", "least-busy")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{section}: unknown strategy {strategy!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
    cooldown = table.get("cooldown", DEFAULT_COOLDOWN_S)
    if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or not 0 <= cooldown <= 86400:
        raise ConfigError(f"{section}: cooldown must be seconds from 0 to 86400")
    deployments = tuple(_deployment(spec, settings, section) for spec in models)
    names = [d.name for d in deployments]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated:
        raise ConfigError(f"{section}: '{repeated}' is listed twice", hint="list each deployment once")
    types = {d.provider.type for d in deployments}
    if len(types) > 1:
        raise ConfigError(f"{section}: the deployments mix API types ({', '.join(sorted(types))})",
                          hint="a route's deployments take the same requests: use providers of one type")
    return Route(name, deployments, strategy, float(cooldown), section)


def _deployment(spec: str, settings: Settings, section: str) -> Deployment:
    """`provider:model` (or an alias for one) → its deployment. A bare model name is refused: which
    provider offers it depends on the models cache, and a route must mean the same tomorrow."""
    expanded = settings.expand(spec)
    provider_name, _, model = expanded.partition(":")
    provider = settings.providers.get(provider_name)
    loaded = {s.type: s for s in all_specs()}  # a plugin's type is not, until something uses it
    if provider is None or not model:
        known = ", ".join(sorted(p for p, c in settings.providers.items() if c.type not in loaded or loaded[c.type].remote))
        raise ConfigError(f"{section}: model '{spec}' does not resolve to a provider:model",
                          hint=f"write PROVIDER:MODEL with a provider of: {known}")
    if provider.type in loaded:
        _check_remote(provider, spec, section)
    return Deployment(provider, model)


def _check_remote(provider: ProviderConfig, spec: str, section: str) -> None:
    if not provider.spec.remote:
        raise ConfigError(f"{section}: '{spec}' runs on this machine ({provider.type}); a route spreads requests "
                          "over remote deployments")


# -- state ---------------------------------------------------------------------------------------

class SharedCooldowns(Protocol):
    """Cooldowns several processes share (`access.state.AccessState` is one): until when, in wall-clock
    seconds, each of a route's deployments is cooling down (0: it answered again)."""

    def cool(self, route: str, deployment: str, until: float) -> None: ...

    def cooling(self, route: str) -> dict[str, float]: ...


@dataclass
class _State:
    in_flight: int = 0
    cooling_until: float = 0.0  # on the router's clock
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock, for /health
    answered: int = 0
    failures: int = 0


@dataclass
class Router:
    """A route's live state: which deployment a request tries first, which are cooling down.
    `clock` is monotonic seconds (tests pass their own)."""

    route: Route
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    shared: SharedCooldowns | None = None
    _read_at: float = -math.inf  # when `shared` was last read, on `clock`
    _turn: int = 0
    _states: dict[str, _State] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _adapters: dict[float, dict[str, Provider]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._states = {d.name: _State() for d in self.route.deployments}

    def adapters(self, timeout: float) -> dict[str, Provider]:
        """Each deployment's adapter, looked up once (serve builds a RoutedProvider per request)."""
        if timeout not in self._adapters:
            from streamchat.providers.base import get_provider

            self.route.check_remote()
            with self._lock:
                self._adapters[timeout] = {d.name: get_provider(d.provider, timeout=timeout)
                                           for d in self.route.deployments}
        return self._adapters[timeout]

    def _read_shared(self) -> None:
        """Take in the cooldowns other processes put in the shared store (at most every SHARED_READ_S):
        the later of theirs and this process's own holds."""
        if self.shared is None or self.clock() - self._read_at < SHARED_READ_S:
            return
        self._read_at = self.clock()
        try:
            seen = self.shared.cooling(self.route.name)
        except StreamchatError as err:  # the store is down: this process's own cooldowns still hold
            log.debug("route %s: shared cooldowns not read: %s", self.route.name, err)
            return
        now, wall = self.clock(), self.wall()
        with self._lock:
            for name, until in seen.items():
                state = self._states.get(name)
                if state is not None and until > wall:
                    state.cooling_until = max(state.cooling_until, now + until - wall)

    def _share(self, deployment: Deployment, until: float) -> None:
        if self.shared is None:
            return
        try:
            self.shared.cool(self.route.name, deployment.name, until)
        except StreamchatError as err:
            log.debug("route %s: cooldown of %s not shared: %s", self.route.name, deployment.name, err)

    def plan(self) -> list[Deployment]:
        """The order one request tries the deployments in: those not cooling down by strategy, then
        the cooling ones, soonest back first (a route whose every deployment failed still tries)."""
        self._read_shared()
        with self._lock:
            now = self.clock()
            deployments = self.route.deployments
            start = self._turn % len(deployments)
            self._turn += 1
            rotated = deployments[start:] + deployments[:start]
            ready = [d for d in rotated if self._states[d.name].cooling_until <= now]
            if self.route.strategy == "least-busy":
                ready.sort(key=lambda d: self._states[d.name].in_flight)  # stable: ties keep the rotation
            cooling = sorted((d for d in rotated if self._states[d.name].cooling_until > now),
                             key=lambda d: self._states[d.name].cooling_until)
            return ready + cooling

    def started(self, deployment: Deployment) -> None:
        with self._lock:
            self._states[deployment.name].in_flight += 1

    def ended(self, deployment: Deployment, error: StreamchatError | None = None) -> None:
        """An attempt is over: answered (error None), or failed — a failure the next deployment
        could have answered (a retryable one) cools this one down, here and in the shared store."""
        shared: float | None = None  # what to tell the other processes, if anything
        with self._lock:
            state = self._states[deployment.name]
            state.in_flight -= 1
            if error is None:
                state.answered += 1
                if state.cooling_until > self.clock():
                    shared = 0.0  # it was cooling and answered: back, for the others too
                state.cooling_until = 0.0  # tried while cooling (every other one was too) and answered: back
            else:
                state.failures += 1
                state.last_error, state.last_error_at = str(error), self.wall()
                if error.retryable:
                    cooldown = max(self.route.cooldown, error.retry_after or 0.0)
                    state.cooling_until = self.clock() + cooldown
                    shared = self.wall() + cooldown
        if shared is not None:
            self._share(deployment, shared)

    def left(self, deployment: Deployment) -> None:
        """An attempt closed by its caller (Ctrl-C, a cancel, a client gone): neither answer nor fault."""
        with self._lock:
            self._states[deployment.name].in_flight -= 1

    def cooling(self, deployment: Deployment) -> float:
        """Seconds until `deployment` is tried first again (0: it is not cooling down)."""
        with self._lock:
            return max(0.0, self._states[deployment.name].cooling_until - self.clock())

    def health(self) -> dict[str, Any]:
        """The route's deployments and their state, for `GET /health` (errors are redacted by `str`)."""
        self._read_shared()
        with self._lock:
            now, wall = self.clock(), self.wall()
            rows = []
            for d in self.route.deployments:
                s = self._states[d.name]
                left = s.cooling_until - now
                row: dict[str, Any] = {"deployment": d.name, "state": "cooling_down" if left > 0 else "ok",
                                       "in_flight": s.in_flight, "answered": s.answered, "failures": s.failures,
                                       "last_error": s.last_error}
                if left > 0:
                    row["cooling_until"] = round(wall + left, 3)
                    row["cooling_for_s"] = round(left, 3)
                rows.append(row)
            return {"strategy": self.route.strategy, "cooldown_s": self.route.cooldown, "deployments": rows}


_ROUTERS: dict[str, Router] = {}
_SEEN: dict[int, tuple[Route, Router]] = {}  # by the Route object: a repr per request cost ~0.1 ms
_ROUTERS_LOCK = threading.Lock()
_SHARED: list[SharedCooldowns] = []  # the store every router of this process shares cooldowns through


def share_cooldowns(shared: SharedCooldowns) -> None:
    """From now on every route's cooldowns in this process also go through `shared` (serve's state
    store), so other workers and servers on it skip a failing deployment too."""
    with _ROUTERS_LOCK:
        _SHARED[:] = [shared]
        for router in _ROUTERS.values():
            router.shared = shared


def router_for(route: Route) -> Router:
    """The process's one router for `route` (the same table, the same state)."""
    seen = _SEEN.get(id(route))
    if seen is not None and seen[0] is route:
        return seen[1]
    key = repr(route)
    with _ROUTERS_LOCK:
        if key not in _ROUTERS:
            _ROUTERS[key] = Router(route, shared=_SHARED[0] if _SHARED else None)
        _SEEN[id(route)] = (route, _ROUTERS[key])
        return _ROUTERS[key]


def health(routes: Mapping[str, Route]) -> dict[str, Any]:
    return {name: router_for(route).health() for name, route in routes.items()}


# -- the provider a route looks like -------------------------------------------------------------

class RoutedProvider:
    """A `Provider` (and `AsyncProvider`) over a route: each stream goes to the deployments in the
    router's order until one gets past its first token. One per ChatSession: `answered` is the
    deployment of its last attempt (the one that answered, or whose error ended the turn), which
    the turn is priced and logged as."""

    def __init__(self, route: Route, *, timeout: float, notice: Callable[[str], None] | None = None,
                 router: Router | None = None) -> None:
        self.route, self.router = route, router or router_for(route)
        self.adapters = self.router.adapters(timeout)
        first = self.adapters[route.deployments[0].name]
        self.name = route.name
        self.base_url: str | None = None  # several: each deployment's error names its own
        self.params = first.params
        self.accepts = frozenset.intersection(*(a.accepts for a in self.adapters.values()))
        self.answered: Deployment | None = None
        self._notice = notice or log.warning

    def prepare(self, model: str) -> None:
        for d in self.route.deployments:
            self.adapters[d.name].prepare(d.model)

    def prepare_async(self) -> None:
        for adapter in self.adapters.values():
            prepare = getattr(adapter, "prepare_async", None)
            if prepare is not None:
                prepare()

    def list_models(self) -> list[str]:
        return [d.name for d in self.route.deployments]

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        if isinstance(exc, StreamchatError):
            return exc
        return self.adapters[self.route.deployments[0].name].map_error(exc, model=model, started=started)

    def stream(self, request: ChatRequest) -> EventStream:
        last: StreamchatError | None = None
        for deployment in self.router.plan():
            adapter, sent = self._attempt(deployment, request)
            started = False
            try:
                with contextlib.closing(adapter.stream(sent)) as events:
                    for event in events:
                        started = started or self._first_token(event, deployment, last)
                        yield event
            except Exception as exc:
                last = self._failed(deployment, exc, started, cancelled=_cancelled())
                continue
            except BaseException:  # closed by the caller (Ctrl-C, a cancel, a closed pipe): not its fault
                self.router.left(deployment)
                raise
            self._answered(deployment)
            return
        raise self._all_failed(last)

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        last: StreamchatError | None = None
        for deployment in self.router.plan():
            adapter, sent = self._attempt(deployment, request)
            started = False
            try:
                async with contextlib.aclosing(adapter.astream(sent)) as events:
                    async for event in events:
                        started = started or self._first_token(event, deployment, last)
                        yield event
            except Exception as exc:
                last = self._failed(deployment, exc, started, cancelled=False)
                continue
            except BaseException:  # the client left: the task was cancelled
                self.router.left(deployment)
                raise
            self._answered(deployment)
            return
        raise self._all_failed(last)

    def _attempt(self, deployment: Deployment, request: ChatRequest) -> tuple[Any, ChatRequest]:
        self.router.started(deployment)
        self.answered = deployment
        log.debug("route %s: %s", self.route.name, deployment.name)
        return self.adapters[deployment.name], replace(request, model=deployment.model)

    def _failed(self, deployment: Deployment, exc: Exception, started: bool, *, cancelled: bool) -> StreamchatError:
        """The attempt's error, raised when the next deployment may not take over: the answer had
        begun, the fault is the request's own (400, 401…) or the turn was cancelled."""
        err = self.adapters[deployment.name].map_error(exc, model=deployment.model, started=started)
        self.router.ended(deployment, err)
        if started or not err.retryable or cancelled:
            if err is exc:
                raise err
            raise err from exc
        cooldown = self.router.cooling(deployment)
        self._notice(f"route {self.route.name}: {deployment.name} failed before answering ({err.message})"
                     + (f" — cooling down {cooldown:.0f} s" if cooldown else "") + "; trying the next deployment")
        return err

    def _first_token(self, event: Event, deployment: Deployment, fell_back: StreamchatError | None) -> bool:
        """Whether `event` is the answer's first token; after a fallback, say who answers now, before the
        token reaches the screen (a line on stderr over a live answer would tear its repaint)."""
        if not isinstance(event, _FIRST_TOKEN):
            return False
        if fell_back is not None:
            self._notice(f"route {self.route.name}: answered by {deployment.name}")
        return True

    def _answered(self, deployment: Deployment) -> None:
        self.router.ended(deployment)

    def _all_failed(self, last: StreamchatError | None) -> StreamchatError:
        assert last is not None  # a route has at least one deployment, and each failure either raised or is `last`
        count = len(self.route.deployments)
        return type(last)(f"route '{self.route.name}': {'all ' + str(count) + ' deployments' if count > 1 else 'its deployment'}"
                          f" failed; the last: {last.message}", hint=last.hint, retry_after=last.retry_after)


def _cancelled() -> bool:
    token = cancellation.current()
    return token is not None and token.cancelled
