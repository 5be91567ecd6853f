"""Routes (#32): the strategies and cooldowns as pure logic on an injected clock; then turns through
the real openai SDK against two fake upstreams, and the CLI's `-m ROUTE` falling back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import base_env
from fakeserver import FakeLLMServer, Script

from streamchat.config import ProviderConfig, Settings, parse_settings
from streamchat.errors import BadRequestError, ConfigError, NetworkError, RateLimitError, ServerError, remember_secret
from streamchat.events import Event, Outcome, TurnResult
from streamchat.routing import Deployment, Route, Router

A, B = (Deployment(ProviderConfig(name, "openai", base_url=f"http://{name}.invalid/v1"), "m") for name in ("a", "b"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(strategy: str = "round-robin", cooldown: float = 10.0) -> tuple[Router, Clock]:
    clock = Clock()
    return Router(Route("team", (A, B), strategy, cooldown), clock=clock, wall=lambda: 5_000.0 + clock.now), clock


def firsts(r: Router, n: int) -> list[str]:
    return [r.plan()[0].provider.name for _ in range(n)]


# -- strategies and cooldowns ---------------------------------------------------------------------

def test_round_robin_alternates_exactly():
    r, _clock = router("round-robin")
    assert firsts(r, 6) == ["a", "b", "a", "b", "a", "b"]
    r.started(A)  # busy does not matter to round-robin
    assert firsts(r, 2) == ["a", "b"]


def test_least_busy_takes_the_idle_one_and_rotates_ties():
    r, _clock = router("least-busy")
    assert firsts(r, 4) == ["a", "b", "a", "b"]  # idle: ties in rotation order, so sequential requests spread
    r.started(A)
    r.started(A)
    r.started(B)
    assert firsts(r, 3) == ["b", "b", "b"]
    r.ended(A)
    r.ended(A)
    assert firsts(r, 2) == ["a", "a"]  # b still has one in flight


def test_a_failure_before_the_first_token_cools_down_then_the_deployment_returns():
    r, clock = router("round-robin", cooldown=10)
    r.started(A)
    r.ended(A, ServerError("a answered HTTP 500"))
    assert firsts(r, 4) == ["b", "b", "b", "b"]
    assert [d.name for d in r.plan()] == ["b:m", "a:m"]  # still tried last: a route never refuses untried
    assert r.cooling(A) == pytest.approx(10)
    clock.now += 9.9
    assert firsts(r, 2) == ["b", "b"]
    clock.now += 0.2
    assert r.cooling(A) == 0
    assert sorted(firsts(r, 2)) == ["a", "b"]


def test_a_429_cools_for_its_retry_after_when_longer_and_a_400_does_not_cool():
    r, _clock = router(cooldown=10)
    r.started(A)
    r.ended(A, RateLimitError("slow down", retry_after=60))
    assert r.cooling(A) == pytest.approx(60)
    r.started(B)
    r.ended(B, BadRequestError("b refused the request"))  # the request's fault: b is fine
    assert r.cooling(B) == 0
    assert r.health()["deployments"][1]["last_error"] == "b refused the request"


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_cooldowns_shared_through_the_access_store_reach_every_process(tmp_path, request, store):
    from streamchat.access.stores import open_state
    from streamchat.routing import SHARED_READ_S

    shared = open_state(f"sqlite:{tmp_path / 'access.db'}" if store == "sqlite" else request.getfixturevalue("redis_url"))
    clock = Clock()
    route = Route("team", (A, B), "round-robin", 10.0)
    one, two = (Router(route, clock=clock, wall=lambda: 5_000.0 + clock.now, shared=shared) for _ in range(2))
    try:
        assert [d.name for d in two.plan()] == ["a:m", "b:m"]  # two has read the store: nothing cools yet
        deployment = one.plan()[0]
        one.started(deployment)
        one.ended(deployment, ServerError("503 from a"))  # one process sees a fail
        two.plan()
        assert two.cooling(A) == 0  # two reads the store at most every SHARED_READ_S
        clock.now += SHARED_READ_S
        assert [d.name for d in two.plan()] == ["b:m", "a:m"] and [d.name for d in two.plan()] == ["b:m", "a:m"]
        assert two.cooling(A) == pytest.approx(10 - SHARED_READ_S)
        assert two.health()["deployments"][0]["state"] == "cooling_down"
        clock.now += 10
        assert two.plan() and two.cooling(A) == 0  # its cooldown is over for every process
    finally:
        shared.close()


def test_every_deployment_cooling_tries_the_soonest_back_first():
    r, clock = router(cooldown=10)
    for d in (A, B):
        r.started(d)
        r.ended(d, NetworkError("connection refused"))
        clock.now += 1
    assert [d.name for d in r.plan()] == ["a:m", "b:m"]  # a cooled first, so it is back first
    r.started(B)
    r.ended(B)  # b, tried while cooling, answered: it is ready again, ahead of a
    assert r.cooling(B) == 0 and [d.name for d in r.plan()] == ["b:m", "a:m"]


def test_health_shows_state_in_flight_and_the_last_error_redacted():
    remember_secret("gsk_live_routing_SECRET")
    r, clock = router(cooldown=30)
    r.started(B)
    r.started(A)
    r.ended(A, ServerError("a answered HTTP 502: bad key gsk_live_routing_SECRET"))
    clock.now += 5
    h = r.health()
    assert h["strategy"] == "round-robin" and h["cooldown_s"] == 30
    a, b = h["deployments"]
    assert a["deployment"] == "a:m" and a["state"] == "cooling_down" and a["cooling_for_s"] == pytest.approx(25)
    assert a["cooling_until"] == pytest.approx(5_000 + clock.now + 25)
    assert a["failures"] == 1 and a["in_flight"] == 0 and "SECRET" not in a["last_error"] and "HTTP 502" in a["last_error"]
    assert b == {"deployment": "b:m", "state": "ok", "in_flight": 1, "answered": 0, "failures": 0, "last_error": None}


# -- config ----------------------------------------------------------------------------------------

PROVIDERS = {"a": {"type": "openai", "base_url": "http://a.invalid/v1"},
             "b": {"type": "openai", "base_url": "http://b.invalid/v1"}}


def settings_with(routes: dict[str, Any], **extra: Any) -> Settings:
    return parse_settings({"providers": PROVIDERS, "routes": routes, **extra})


def test_a_route_resolves_as_a_model_name_directly_or_through_an_alias():
    s = settings_with({"team": {"models": ["a:m1", "fast"], "strategy": "round-robin", "cooldown": 5}},
                      aliases={"fast": "b:m2", "t": "team"})
    route = s.routes["team"]
    assert [d.name for d in route.deployments] == ["a:m1", "b:m2"] and route.cooldown == 5
    assert s.route("team") is route and s.route("t") is route and s.route("a:m1") is None
    cfg, model = s.resolve("t")
    assert (cfg.name, model) == ("a", "m1")  # checked, priced and windowed as its first deployment
    assert settings_with({"team": {"models": ["a:m"]}}).routes["team"].strategy == "least-busy"


@pytest.mark.parametrize("routes,extra,words", [
    ({"team": {"models": ["a:m"], "strategy": "fastest"}}, {}, "unknown strategy 'fastest'"),
    ({"team": {"models": []}}, {}, "models must be a non-empty list"),
    ({"team": {}}, {}, "models must be a non-empty list"),
    ({"team": {"models": ["nowhere:m"]}}, {}, "model 'nowhere:m' does not resolve"),
    ({"team": {"models": ["gpt-4o-mini"]}}, {}, "model 'gpt-4o-mini' does not resolve"),
    ({"team": {"models": ["a:m"]}}, {"aliases": {"team": "a:m"}}, "the name 'team' is also an alias"),
    ({"openai": {"models": ["a:m"]}}, {}, "the name 'openai' is also a provider"),
    ({"b:m2": {"models": ["a:m"]}}, {}, "'b:m2' reads as provider:model"),  # would shadow b:m2 silently
    ({"openai:gpt-4o": {"models": ["a:m"]}}, {}, "'openai:gpt-4o' reads as provider:model"),
    ({"": {"models": ["a:m"]}}, {}, "needs a name"),
    ({"team": {"models": ["a:m", "anthropic:claude"]}}, {}, "mix API types"),
    ({"team": {"models": ["local:smollm2"]}}, {}, "runs on this machine (local)"),
    ({"team": {"models": ["a:m", "a:m"]}}, {}, "'a:m' is listed twice"),
    ({"team": {"models": ["a:m"], "cooldown": -1}}, {}, "cooldown must be seconds"),
    ({"team": {"models": ["a:m"], "retries": 3}}, {}, "unknown key 'retries'"),
])
def test_a_bad_route_is_one_config_error_naming_the_table(routes, extra, words):
    with pytest.raises(ConfigError) as caught:
        settings_with(routes, **extra)
    assert words in str(caught.value) and "[routes." in str(caught.value)
    assert "\n" not in str(caught.value)


# -- turns through the real openai SDK against two upstreams ---------------------------------------

@pytest.fixture(scope="module")
def _upstreams() -> Iterator[tuple[FakeLLMServer, FakeLLMServer]]:
    a, b = FakeLLMServer().start(), FakeLLMServer().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def upstreams(_upstreams):
    for s in _upstreams:
        s.reset()
    return _upstreams


def route_settings(a_url: str, b_url: str, strategy: str = "round-robin", kind: str = "openai") -> Settings:
    path = "/v1" if kind == "openai" else ""
    return parse_settings({"providers": {"a": {"type": kind, "base_url": f"{a_url}{path}", "api_key": "k"},
                                         "b": {"type": kind, "base_url": f"{b_url}{path}", "api_key": "k"}},
                           "routes": {"team": {"models": ["a:echo", "b:echo"], "strategy": strategy}}})


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        self.events.append(event)

    def end(self, result: TurnResult) -> None:
        pass


def ask(settings: Settings, prompt: str = "hi") -> tuple[TurnResult, Any]:
    from streamchat.service import ChatSession, Overrides

    session = ChatSession(settings, Overrides(model="team", retry=False))
    return session.ask(prompt, Collect()), session


@pytest.fixture
def fresh_routers():
    from streamchat import routing

    routing._ROUTERS.clear()  # each test's upstreams are a new route state
    routing._SEEN.clear()
    yield
    routing._ROUTERS.clear()
    routing._SEEN.clear()


def test_round_robin_spreads_requests_alternately_over_two_upstreams(upstreams, fresh_routers):
    a, b = upstreams
    settings = route_settings(a.url, b.url, "round-robin")
    answered = []
    for i in range(6):
        result, session = ask(settings, f"q{i}")
        assert result.ok and result.text == f"echo: q{i}"
        answered.append(session.target.answered()[0])
        assert session.model_name == "team"
    assert answered == ["a", "b", "a", "b", "a", "b"]
    assert [len(a.requests), len(b.requests)] == [3, 3]


@pytest.mark.parametrize("script", [Script(status=500), Script(status=429, headers={"Retry-After": "1"})],
                         ids=["500", "429"])
def test_a_failure_before_the_first_token_falls_back_and_cools_down(upstreams, fresh_routers, caplog, script):
    from streamchat import routing

    a, b = upstreams
    a.script("echo", script)
    settings = route_settings(a.url, b.url, "round-robin")
    with caplog.at_level(logging.WARNING, "streamchat.routing"):
        result, session = ask(settings, "q")
    assert result.ok and result.text == "echo: q" and session.target.answered() == ("b", "echo")
    assert len(a.requests) == 1 and len(b.requests) == 1
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("route team: a:echo failed before answering (") and "cooling down 30 s" in said[0]
    assert said[1] == "route team: answered by b:echo"
    # cooling down: the next requests skip a although round-robin would pick it
    for _ in range(3):
        assert ask(settings)[0].ok
    assert len(a.requests) == 1 and len(b.requests) == 4
    state = routing.health(settings.routes)["team"]["deployments"][0]
    assert state["state"] == "cooling_down" and state["failures"] == 1


def test_answered_by_is_said_before_the_first_token_not_over_a_live_answer(upstreams, fresh_routers):
    """QA: said after the last token, the notice reached stderr while the terminal's live region
    still held the answer: the region's repaint ate it and left a torn copy of the last line."""
    from streamchat.service import ChatSession, Overrides

    a, b = upstreams
    a.script("echo", Script(status=500))
    order: list[str] = []

    class Ordered(Collect):
        def feed(self, event: Event) -> None:
            order.append(type(event).__name__)

    class Notices(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            order.append(record.getMessage())

    handler = Notices(logging.WARNING)
    logging.getLogger("streamchat.routing").addHandler(handler)
    try:
        session = ChatSession(route_settings(a.url, b.url, "round-robin"), Overrides(model="team", retry=False))
        assert session.ask("q", Ordered()).ok
    finally:
        logging.getLogger("streamchat.routing").removeHandler(handler)
    assert "route team: answered by b:echo" in order
    assert order.index("route team: answered by b:echo") < order.index("TextDelta")


def test_an_anthropic_route_falls_back_too_and_a_closed_stream_is_no_fault(upstreams, fresh_routers):
    from streamchat import routing
    from streamchat.events import Message
    from streamchat.providers.base import ChatRequest

    a, b = upstreams
    a.script("echo", Script(status=529, error_type="overloaded_error", error_message="Overloaded"))
    settings = route_settings(a.url, b.url, "round-robin", kind="anthropic")
    result, session = ask(settings, "q")
    assert result.ok and result.text == "echo: q" and session.target.answered() == ("b", "echo")
    a.reset()
    provider = routing.RoutedProvider(settings.routes["team"], timeout=10)
    events = provider.stream(ChatRequest("team", (Message("user", "hi"),), max_tokens=50))
    next(events)
    events.close()  # the caller stopped (Ctrl-C, a cancel): not the deployment's fault, not an answer
    rows = routing.health(settings.routes)["team"]["deployments"]
    assert [(r["in_flight"], r["answered"], r["failures"]) for r in rows] == [(0, 0, 1), (0, 1, 0)]


def test_a_failure_after_the_first_token_is_not_retried_elsewhere(upstreams, fresh_routers):
    a, b = upstreams
    a.script("echo", Script(chunks=["partial ", "answer"], fault="drop", fault_after=1))
    result, _session = ask(route_settings(a.url, b.url, "round-robin"))
    assert result.outcome is Outcome.FAILED and result.text == "partial "
    assert len(b.requests) == 0  # no silent switch: the text shown would have been answered twice


def test_a_stopped_upstream_is_skipped_and_all_down_is_the_last_error(upstreams, fresh_routers):
    a, b = upstreams
    gone = FakeLLMServer().start()
    gone.stop()  # connection refused from now on
    settings = route_settings(gone.url, b.url, "least-busy")
    for _ in range(3):
        result, session = ask(settings)
        assert result.ok and session.target.answered()[0] == "b"
    b.script("echo", Script(status=503))
    result, _session = ask(settings)
    # b (ready) was tried first, then the cooling one: its error is the last, with its own class (exit code)
    assert result.outcome is Outcome.FAILED and isinstance(result.error, NetworkError)
    assert str(result.error).startswith("route 'team': all 2 deployments failed; the last: connection refused by a")


def test_priced_and_logged_as_the_deployment_that_answered(upstreams, fresh_routers, tmp_path):
    from streamchat.service import ChatSession, Overrides
    from streamchat.store import ConversationLog, connect

    a, b = upstreams
    a.script("echo", Script(status=500))
    settings = route_settings(a.url, b.url, "round-robin")
    log = ConversationLog(connect(tmp_path / "log.db"), warn=print, path=tmp_path / "log.db")
    session = ChatSession(settings, Overrides(model="team", retry=False), log=log)
    assert session.ask("q", Collect()).ok
    listed = log.load(session.conversation.id)
    assert listed.model == "b:echo"


# -- the CLI -----------------------------------------------------------------------------------------

def route_config(home: Any, a: FakeLLMServer, b: FakeLLMServer) -> str:
    cfg = home / "routes.toml"
    cfg.write_text(f'[providers.a]\ntype = "openai"\nbase_url = "{a.url}/v1"\napi_key = "k"\n'
                   f'[providers.b]\ntype = "openai"\nbase_url = "{b.url}/v1"\napi_key = "k"\n'
                   '[routes.team]\nmodels = ["a:echo", "b:echo"]\nstrategy = "round-robin"\n')
    cfg.chmod(0o600)
    return str(cfg)


@pytest.mark.e2e
def test_cli_dash_m_route_falls_back_and_says_which_answered(upstreams, fresh_routers, invoke, home):
    a, b = upstreams
    a.script("echo", Script(status=502))
    r = invoke("-m", "team", "hello", env=base_env(home, STREAMCHAT_CONFIG=route_config(home, a, b)))
    assert r.code == 0, r.stderr
    assert r.out == "echo: hello\n"
    assert "route team: a:echo failed before answering (" in r.stderr and "HTTP 502" in r.stderr
    assert "route team: answered by b:echo" in r.stderr and "Traceback" not in r.stderr
    assert len(a.requests) == 1 and len(b.requests) == 1


@pytest.mark.e2e
def test_repl_on_a_route_falls_back_once_then_skips_the_cooling_deployment(upstreams, home, server):
    import pexpect
    from test_repl import exchange, spawn

    a, b = upstreams
    a.script("echo", Script(status=500))
    child = spawn(home, server, "-m", "team", env_extra={"STREAMCHAT_CONFIG": route_config(home, a, b)})
    try:
        exchange(child, "q1", "echo: q1")
        exchange(child, "q2", "echo: q2")
        exchange(child, "q3", "echo: q3")
        shown = child.logfile_read.getvalue()
        assert shown.count("failed before answering") == 1 and shown.count("answered by b:echo") == 1
        assert " team · " in shown  # the toolbar names the route
        assert len(a.requests) == 1 and len(b.requests) == 3
    finally:
        child.sendeof()
        child.expect(pexpect.EOF)


@pytest.mark.e2e
def test_cli_shows_routes_and_refuses_a_bad_one_in_one_line(invoke, home, server):
    import json

    cfg = route_config(home, server, server)
    shown = json.loads(invoke("config", "show", env=base_env(home, STREAMCHAT_CONFIG=cfg)).out)["routes"]
    assert shown == {"team": {"models": ["a:echo", "b:echo"], "strategy": "round-robin", "cooldown": 30.0}}
    with open(cfg, "a") as f:
        f.write('[routes.slow]\nmodels = ["a:echo"]\nstrategy = "fastest"\n')
    r = invoke("-m", "team", "q", env=base_env(home, STREAMCHAT_CONFIG=cfg))
    assert r.code == 3 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "[routes.slow]: unknown strategy 'fastest'" in r.stderr and "least-busy, round-robin" in r.stderr
    assert not server.requests
