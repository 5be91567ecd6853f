"""`serve --keys` end to end: the real OpenAI SDK against serve against the fake server, keys made
and revoked by the `access` CLI, state in SQLite (one server, two workers) and in a real Redis
(two servers sharing it). The fake server's usage prices each gpt-4o-mini answer (genai-prices)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import STREAMCHAT, base_env, start_redis, stop
from fakeserver import FakeLLMServer, Script
from servehelp import ServeProcess, websocket_answer

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")
pytestmark = pytest.mark.e2e

ADMIN = "admin-token-0123456789abcdef"
MODEL = "openai:gpt-4o-mini"
PER_ANSWER = (400, 100)  # tokens in, out: $0.00006 + $0.00006 = $0.00012 an answer at gpt-4o-mini's price


def access(home: Path, upstream: FakeLLMServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`streamchat access …`, in-process: the serve process under test reads what it writes from
    the shared store, and no check here needs the admin command to be a process of its own."""
    import io

    from streamchat.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    code = main(["access", *args], base_env(home, upstream), stdout=out, stderr=err)
    return subprocess.CompletedProcess(["streamchat", "access", *args], code, out.getvalue().decode(), err.getvalue().decode())


def make_key(home: Path, upstream: FakeLLMServer, name: str, *limits: str) -> str:
    done = access(home, upstream, "create", name, *limits)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def keyed(home: Path, upstream: FakeLLMServer, *args: str) -> ServeProcess:
    return ServeProcess(home, upstream, "-m", MODEL, "--allow-model=openai:*", "--keys", *args, token=ADMIN)


def client(serve: ServeProcess, key: str):
    from streamchat.providers._sdk import import_sdk

    return import_sdk("openai").OpenAI(base_url=f"{serve.url}/v1", api_key=key, max_retries=0)


def ask(serve: ServeProcess, key: str, model: str = MODEL, **kwargs) -> httpx.Response:
    return httpx.post(f"{serve.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "q"}], **kwargs})


@pytest.fixture(scope="module")
def _serve(_server_instance, tmp_path_factory):
    home = tmp_path_factory.mktemp("keys")
    proc = keyed(home, _server_instance)
    proc.home = home
    yield proc
    proc.stop()


@pytest.fixture
def serve(_serve, server):
    server.script("gpt-4o-mini", Script(chunks=["an ", "answer"], usage=PER_ANSWER))
    return _serve


def test_every_endpoint_wants_a_key(serve, server):
    openai = __import__("streamchat.providers._sdk", fromlist=["import_sdk"]).import_sdk("openai")
    for key in ("sk-sc-" + "x" * 43, "not-a-key"):
        with pytest.raises(openai.AuthenticationError):
            client(serve, key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q"}])
    for path in ("/", "/stream?prompt=hi", "/v1/models"):
        assert httpx.get(serve.url + path, timeout=10).status_code == 401
    assert httpx.get(serve.url + "/static/page.js", timeout=10).status_code == 200  # the page's own files stay public
    assert websocket_answer(serve.port) is None
    key = make_key(serve.home, server, "everywhere")
    assert websocket_answer(serve.port, {"Authorization": f"Bearer {key}"}) == "an answer"
    assert httpx.get(f"{serve.url}/?token={key}", timeout=10).status_code == 200
    r = httpx.get(f"{serve.url}/stream", params={"prompt": "hi"}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200 and "event: done" in r.text
    done = client(serve, key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q"}])
    assert done.choices[0].message.content == "an answer"


def test_a_budget_admits_what_it_pays_for_then_429_insufficient_quota(serve, server):
    openai = __import__("streamchat.providers._sdk", fromlist=["import_sdk"]).import_sdk("openai")
    key = make_key(serve.home, server, "small", "--budget", "0.0006")
    answered, refusal = 0, None
    for _ in range(8):
        try:
            client(serve, key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q"}])
            answered += 1
        except openai.RateLimitError as err:
            refusal = err
            break
    assert answered == 5
    assert refusal is not None and refusal.body["code"] == "insufficient_quota" and refusal.body["type"] == "insufficient_quota"
    listed = access(serve.home, server, "list").stdout
    assert "small\tactive\t$0.0006/total\t$0.0006/$0.0006\t" in listed and key not in listed
    usage = [json.loads(line) for line in access(serve.home, server, "usage", "--json").stdout.splitlines()]
    mine = next(u for u in usage if u["key"] == "small")
    assert mine["requests"] == 6 and mine["errors"] == 1 and mine["statuses"] == {"insufficient_quota": 1}
    assert mine["input_tokens"] == 5 * 400 and mine["output_tokens"] == 5 * 100 and mine["cost_usd"] == pytest.approx(0.0006)
    table = access(serve.home, server, "usage", "--since", "1h").stdout
    assert "small\topenai:gpt-4o-mini\t6 requests\t2000+500 tokens\t$0.0006\t1 error" in table


def test_rpm_admits_n_of_a_burst_and_says_when_to_retry(serve, server):
    key = make_key(serve.home, server, "rapid", "--rpm", "5")
    replies = [ask(serve, key) for _ in range(8)]
    assert [r.status_code for r in replies] == [200] * 5 + [429] * 3
    for r in replies[5:]:
        assert r.json()["error"]["code"] == "rate_limit_exceeded" and 1 <= int(r.headers["retry-after"]) <= 12


def test_a_key_limited_to_a_model_is_refused_others(serve, server):
    key = make_key(serve.home, server, "mini-only", "--models", MODEL)
    server.script("gpt-4o", Script(chunks=["big"], usage=PER_ANSWER))
    refused = ask(serve, key, "openai:gpt-4o")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert ask(serve, key).status_code == 200


def test_revoking_stops_a_key_on_the_running_server_within_a_second(serve, server):
    key = make_key(serve.home, server, "leaver")
    assert ask(serve, key).status_code == 200
    assert httpx.get(f"{serve.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
    assert access(serve.home, server, "revoke", "leaver").returncode == 0
    revoked = time.monotonic()
    r = ask(serve, key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # a turn reads the store itself
    while httpx.get(f"{serve.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code != 401:
        assert time.monotonic() - revoked < 1.5
        time.sleep(0.05)


def test_usage_over_http_is_for_the_admin_token(serve, server):
    key = make_key(serve.home, server, "reader")
    assert ask(serve, key).status_code == 200
    assert httpx.get(f"{serve.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 403
    data = httpx.get(f"{serve.url}/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()["data"]
    assert next(u for u in data if u["key"] == "reader")["requests"] == 1


def test_bad_input_is_one_line_and_changes_nothing(tmp_path, server):
    cases = [(("revoke", "nobody"), 2, "no active key named 'nobody'"),
             (("create", "k", "--budget", "0"), 2, "--budget must be a positive number"),
             (("create", "k", "--budget", "-3"), 2, "--budget must be a positive number"),
             (("create", "k", "--state", "redis://host:port/x"), 2, "is not a Redis URL"),
             (("create", "k", "--state", "redis://127.0.0.1:1/0"), 3, "cannot reach the access store at redis://127.0.0.1:1/0"),
             (("list", "--state", "mysql://h/db"), 2, "--state must be a redis:// URL")]
    for args, code, said in cases:
        done = access(tmp_path, server, *args)
        assert done.returncode == code and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    assert access(tmp_path, server, "list").stdout == ""
    for state, code in (("redis://127.0.0.1:1/0", 3), ("redis://h:p/0", 2)):
        done = subprocess.run([STREAMCHAT, "serve", "--keys", "--state", state], env=base_env(tmp_path, server),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == code and len(done.stderr.strip().splitlines()) == 1, done.stderr


PROMPT_400 = "q" * 400  # a prompt as long as the fake server's usage says (a reservation bounds it by its bytes)


def test_a_client_that_leaves_mid_answer_is_settled_at_once(serve, server):
    server.script("gpt-4o-mini", Script(chunks=[f"t{i} " for i in range(300)], delay=0.02, usage=PER_ANSWER))
    key = make_key(serve.home, server, "quitter", "--budget", "0.01")
    with httpx.stream("POST", f"{serve.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": MODEL, "messages": [{"role": "user", "content": "q"}], "stream": True}) as r:
        for line in r.iter_lines():
            if "t3" in line:
                break
    deadline = time.monotonic() + 10
    while True:  # the upstream is closed and the request recorded: the prompt and what streamed, priced
        rows = [json.loads(line) for line in access(serve.home, server, "usage", "--json").stdout.splitlines()]
        mine = [row for row in rows if row["key"] == "quitter"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine and mine[0]["statuses"] == {"cancelled": 1} and mine[0]["cost_usd"] > 0
    server.script("gpt-4o-mini", Script(chunks=["ok"], usage=PER_ANSWER))
    started = time.monotonic()
    assert ask(serve, key).status_code == 200 and time.monotonic() - started < 5  # no reservation left to wait for


@pytest.mark.redis
def test_an_unreachable_store_is_503_never_an_unmetered_answer(tmp_path, server):
    server.script("gpt-4o-mini", Script(chunks=["x"], usage=PER_ANSWER))
    redis, port = start_redis(tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    key = make_key(tmp_path, server, "fragile", "--state", url)
    serve = keyed(tmp_path, server, "--state", url)
    try:
        assert ask(serve, key).status_code == 200
        stop(redis)
        refused = ask(serve, key)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "state_unavailable"
        assert len(server.requests) == 1  # nothing went upstream without being metered
    finally:
        serve.stop()
        stop(redis)


@pytest.mark.slow
def test_a_budget_holds_under_50_concurrent_requests_on_two_workers(tmp_path, server):
    server.script("gpt-4o-mini", Script(chunks=["a", "b", "c"], delay=0.05, usage=PER_ANSWER))
    serve = keyed(tmp_path, server, "--workers", "2")
    try:
        key = make_key(tmp_path, server, "crowd", "--budget", "0.0012")  # 10 answers

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=60)) as http:
                replies = await asyncio.gather(*(
                    http.post(f"{serve.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": MODEL, "messages": [{"role": "user", "content": PROMPT_400}], "max_tokens": 100})
                    for _ in range(50)))
            return [r.status_code for r in replies]

        codes = asyncio.run(burst())
    finally:
        serve.stop()
    assert set(codes) <= {200, 429}
    assert 10 <= codes.count(200) <= 12, codes


@pytest.mark.redis
def test_two_servers_sharing_redis_hold_one_budget(tmp_path, server, redis_url):
    server.script("gpt-4o-mini", Script(chunks=["x"], usage=PER_ANSWER))
    key = make_key(tmp_path, server, "shared", "--budget", "0.0006", "--rpm", "100", "--state", redis_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = keyed(tmp_path / "a", server, "--state", redis_url), keyed(tmp_path / "b", server, "--state", redis_url)
    try:
        codes = [ask(s, key).status_code for s in (one, two) * 4]
        assert codes == [200] * 5 + [429] * 3
        r = access(tmp_path, server, "revoke", "shared", "--state", redis_url)
        assert r.returncode == 0
        assert ask(two, key).status_code == 401
    finally:
        one.stop()
        two.stop()
    usage = json.loads(access(tmp_path, server, "usage", "--json", "--state", redis_url).stdout.splitlines()[0])
    assert usage["requests"] == 8 and usage["cost_usd"] == pytest.approx(0.0006)


def test_models_lists_only_what_a_key_may_use(serve, server):
    admin = client(serve, ADMIN).models.list()
    everything = [m.id for m in admin.data]
    assert MODEL in everything and "anthropic:claude-sonnet-4-5" in everything and len(everything) > 2
    assert admin.object == "list" and all(m.object == "model" and m.owned_by for m in admin.data)
    assert [m.id for m in client(serve, make_key(serve.home, server, "any-model")).models.list().data] == everything
    limited = client(serve, make_key(serve.home, server, "listed", "--models", f"{MODEL},openai:no-such"))
    seen = limited.models.list()
    assert seen.object == "list" and [m.id for m in seen.data] == [MODEL]
    assert limited.models.retrieve(MODEL).id == MODEL
    openai = __import__("streamchat.providers._sdk", fromlist=["import_sdk"]).import_sdk("openai")
    for other in ("openai:gpt-4o", "anthropic:claude-sonnet-4-5"):  # one --allow-model lets in, one it lists
        with pytest.raises(openai.NotFoundError):
            limited.models.retrieve(other)
        assert client(serve, ADMIN).models.retrieve(other).id == other


def vote(serve: ServeProcess, key: str, *models: str) -> httpx.Response:
    return httpx.post(f"{serve.url}/vote", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"models": list(models), "winner": models[0], "outcome": "win"})


def test_a_key_votes_only_on_models_it_may_use(serve, server):
    key = make_key(serve.home, server, "voter", "--models", MODEL)
    refused = vote(serve, key, MODEL, "openai:gpt-4o")
    assert refused.status_code == 403
    assert refused.json() == {"error": {"message": "key 'voter' may not use model 'openai:gpt-4o'",
                                        "type": "invalid_request_error", "code": "model_not_allowed", "param": None}}
    assert vote(serve, key, "openai:gpt-4o", MODEL).status_code == 403  # whichever place it is in
    free = make_key(serve.home, server, "free-voter")
    assert vote(serve, free, MODEL, "openai:gpt-4o").status_code == 201
    assert vote(serve, ADMIN, MODEL, "openai:gpt-4o").status_code == 201
