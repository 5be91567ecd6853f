"""Routes through `streamchat serve` (#32): the real openai SDK as the client, two fake upstreams
behind one route name, one of them failing or stopped; `GET /health` shows each deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakeserver import FakeLLMServer, Script
from servehelp import ServeProcess

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[tuple[ServeProcess, FakeLLMServer, FakeLLMServer]]:
    a, b = FakeLLMServer().start(), FakeLLMServer().start()
    tables = "".join(f'[providers.{n}]\ntype = "openai"\nbase_url = "{s.url}/v1"\napi_key = "k"\n' for n, s in (("a", a), ("b", b)))
    tables += ('[routes.team]\nmodels = ["a:echo", "b:echo"]\nstrategy = "round-robin"\ncooldown = 60\n'
               '[routes.pair]\nmodels = ["a:echo", "b:echo"]\ncooldown = 0\n')
    proc = ServeProcess(tmp_path_factory.mktemp("serve-routes"), a, "-m", "team", config_extra=tables)
    yield proc, a, b
    proc.stop()
    a.stop()
    b.stop()


@pytest.fixture
def routed(setup):
    for upstream in setup[1:]:
        upstream.reset()
    return setup


def client(serve: ServeProcess) -> Any:
    from streamchat.providers._sdk import import_sdk

    return import_sdk("openai").OpenAI(base_url=f"{serve.url}/v1", api_key="unused", max_retries=0)


def streamed(c: Any, model: str, prompt: str) -> str:
    stream = c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def deployments(serve: ServeProcess, route: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{serve.url}/health", timeout=10)
    assert r.status_code == 200
    rows: list[dict[str, Any]] = r.json()["routes"][route]["deployments"]
    return rows


def test_a_route_is_offered_and_spreads_round_robin_over_two_upstreams(routed):
    serve, a, b = routed
    c = client(serve)
    ids = [m.id for m in c.models.list()]
    assert "team" in ids and "pair" in ids and "a:echo" not in ids  # the route, not its deployments
    assert c.models.retrieve("pair").id == "pair"
    refused = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                         json={"model": "a:echo", "messages": [{"role": "user", "content": "q"}]})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    for i in range(6):
        assert streamed(c, "team", f"q{i}") == f"echo: q{i}"
    said = sorted([(r.body["messages"][-1]["content"], "a") for r in a.requests]
                  + [(r.body["messages"][-1]["content"], "b") for r in b.requests])
    assert [who for _q, who in said] == ["a", "b", "a", "b", "a", "b"] or \
        [who for _q, who in said] == ["b", "a", "b", "a", "b", "a"]  # alternating exactly
    rows = deployments(serve, "team")
    assert [(r["deployment"], r["state"], r["answered"], r["in_flight"]) for r in rows] == \
        [("a:echo", "ok", 3, 0), ("b:echo", "ok", 3, 0)]


def test_least_busy_spreads_concurrent_answers_and_health_counts_them_in_flight(routed):
    serve, a, b = routed
    gate = threading.Event()
    for upstream in (a, b):
        upstream.script("echo", Script(chunks=["one ", "two"], gate=gate))  # each answer waits after its first chunk
    c = client(serve)
    with ThreadPoolExecutor(6) as pool:
        answers = [pool.submit(streamed, c, "pair", f"q{i}") for i in range(6)]
        deadline = time.monotonic() + 20
        while len(a.requests) + len(b.requests) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = deployments(serve, "pair")
        gate.set()
        assert [f.result(timeout=30) for f in answers] == ["one two"] * 6
    assert [r["in_flight"] for r in rows] == [3, 3]  # least-busy: each new answer to the idler one
    assert (len(a.requests), len(b.requests)) == (3, 3)
    assert [r["in_flight"] for r in deployments(serve, "pair")] == [0, 0]


@pytest.mark.parametrize("script", [Script(status=500), Script(status=429)], ids=["500", "429"])
def test_a_failure_before_the_first_token_is_answered_by_the_other(routed, script):
    serve, a, b = routed
    a.script("echo", script)
    c = client(serve)
    assert streamed(c, "pair", "one") == "echo: one"
    done = c.chat.completions.create(model="pair", messages=[{"role": "user", "content": "two"}])
    assert done.choices[0].message.content == "echo: two"
    assert len(a.requests) <= 2 and len(b.requests) == 2  # a was tried, b answered both
    assert "HTTP" in (deployments(serve, "pair")[0]["last_error"] or "")


def test_a_failure_after_the_first_token_is_not_retried(routed):
    serve, a, b = routed
    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")
    for upstream in (a, b):
        upstream.script("echo", Script(chunks=["partial ", "answer"], fault="drop", fault_after=1))
    with pytest.raises(openai.APIError):
        streamed(client(serve), "pair", "q")
    assert len(a.requests) + len(b.requests) == 1  # no silent switch after text went out


def test_a_stopped_upstream_leaves_the_route_answering_and_health_shows_it_cooling(routed):
    serve, a, b = routed
    a.stop()  # connection refused from now on (the last test of this module to use a)
    c = client(serve)
    for i in range(4):
        assert streamed(c, "team", f"q{i}") == f"echo: q{i}"
    assert len(b.requests) == 4
    first, second = deployments(serve, "team")
    assert first["deployment"] == "a:echo" and first["state"] == "cooling_down"
    assert 50 < first["cooling_for_s"] <= 60 and first["cooling_until"] > 0
    assert first["failures"] == 1 and first["last_error"]  # tried once, then skipped while cooling
    assert "connection refused by a" in first["last_error"] and "Traceback" not in first["last_error"]
    assert second["state"] == "ok" and second["answered"] >= 4


@pytest.mark.parametrize("keys", [(), ("--keys",)], ids=["plain", "keys"])
def test_workers_share_a_cooldown_through_the_access_store(tmp_path, keys):
    """On --workers N the routes' cooldowns go through the state store (access.db; with --keys, the
    keys' store): a deployment that failed in one worker is skipped by the other too (each tried it
    once before)."""
    good, bad = FakeLLMServer().start(), FakeLLMServer().start()
    bad.script("echo", Script(status=500))
    tables = "".join(f'[providers.{n}]\ntype = "openai"\nbase_url = "{s.url}/v1"\napi_key = "k"\n'
                     for n, s in (("good", good), ("bad", bad)))
    tables += '[routes.team]\nmodels = ["bad:echo", "good:echo"]\nstrategy = "round-robin"\ncooldown = 60\n'
    admin = "admin-token-0123456789abcdef"
    serve = ServeProcess(tmp_path, good, "-m", "team", *keys, "--workers", "2", token=admin, config_extra=tables)
    try:
        bad.reset()
        bad.script("echo", Script(status=500))
        for i in range(16):  # a new connection each: the kernel spreads them over both workers
            r = httpx.post(f"{serve.url}/v1/chat/completions", headers={"Authorization": f"Bearer {admin}"}, timeout=60,
                           json={"model": "team", "messages": [{"role": "user", "content": f"q{i}"}]})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == f"echo: q{i}"
    finally:
        serve.stop()
        good.stop()
        bad.stop()
    assert len(bad.requests) == 1  # per worker: 2
