"""Votes from serve's compare mode: the vote endpoint as an attacker and the page would call it, the
log's votes table, and `streamchat history votes`."""

from __future__ import annotations

import json

import httpx
import pytest
from servehelp import ServeProcess

from streamchat.config import parse_settings
from streamchat.leaderboard import Vote
from streamchat.store import ConversationLog, connect

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

from streamchat.serve.policy import ModelPolicy, Refused  # noqa: E402
from streamchat.serve.routes_votes import MAX_VOTE_BYTES, parse_vote, store_vote  # noqa: E402

SETTINGS = parse_settings({"aliases": {"quick": "vllm:b"}, "routes": {"team": {"models": ["vllm:a", "vllm:b"]}},
                           "providers": {"vllm": {"type": "openai", "base_url": "http://x/v1", "models": ["a", "b"]}}})
POLICY = ModelPolicy(SETTINGS, "vllm:a")


# -- the vote's body, checked in-process ----------------------------------------------------------

def test_a_vote_names_offered_models_by_their_resolved_names():
    vote = parse_vote({"models": ["vllm:a", "quick"], "winner": "quick", "outcome": "win", "blind": True,
                       "prompt": "which?"}, POLICY, SETTINGS)
    assert vote == Vote(("vllm:a", "vllm:b"), "win", "vllm:b", True, "which?")
    routed = parse_vote({"models": ["team", "quick"], "outcome": "bad"}, POLICY, SETTINGS)
    assert routed.models == ("team", "vllm:b")  # a route by its name, not the deployment it starts with
    tie = parse_vote({"models": ["vllm:a", "vllm:b"], "winner": None, "outcome": "tie"}, POLICY, SETTINGS)
    assert (tie.winner, tie.outcome, tie.blind, tie.prompt) == (None, "tie", False, "")


@pytest.mark.parametrize("body, status, words", [
    ({"models": ["vllm:a", "openai:gpt-4o"], "outcome": "tie"}, 404, "not offered"),
    ({"models": ["vllm:a", "local:/etc/passwd"], "outcome": "tie"}, 404, "not offered"),
    ({"models": ["vllm:a", "nosuch:x"], "outcome": "tie"}, 404, "unknown model"),
    ({"models": ["vllm:a"], "outcome": "tie"}, 400, "'models' must be a list of 2 or 3"),
    ({"models": "vllm:a", "outcome": "tie"}, 400, "'models' must be a list"),
    ({"models": ["vllm:a", ""], "outcome": "tie"}, 400, "non-empty strings"),
    ({"models": ["vllm:a", "vllm:b"], "outcome": "draw"}, 400, "'outcome' must be one of win, tie, bad"),
    ({"models": ["vllm:a", "vllm:b"], "outcome": "win"}, 400, "a winner goes with outcome 'win'"),
    ({"models": ["vllm:a", "vllm:b"], "outcome": "win", "winner": "vllm:c"}, 400, "'winner' must be one of"),
    ({"models": ["vllm:b", "quick"], "outcome": "tie"}, 400, "named twice"),  # an alias and its target
    ({"models": ["vllm:a", "vllm:b"], "outcome": "tie", "blind": "yes"}, 400, "'blind' must be true or false"),
    ({"models": ["vllm:a", "vllm:b"], "outcome": "tie", "prompt": "x" * 4001}, 400, "'prompt' must be"),
    ({"models": ["vllm:a", "vllm:b"], "outcome": "tie", "score": 3}, 400, "'score' is not a vote field"),
])
def test_a_vote_that_is_not_one_is_refused_and_never_echoes_a_path(body, status, words):
    with pytest.raises(Refused) as info:
        parse_vote(body, POLICY, SETTINGS)
    assert (info.value.status, words in info.value.message) == (status, True), info.value.message
    assert "/etc" not in info.value.message


def test_with_the_log_off_a_vote_is_refused_not_dropped(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMCHAT_DB", str(tmp_path / "log.db"))
    with pytest.raises(Refused) as info:
        store_vote(parse_settings({"log": False}), Vote(("a:x", "a:y"), "tie"))
    assert info.value.status == 409 and "log = false" in info.value.message
    assert not (tmp_path / "log.db").exists()
    assert store_vote(parse_settings({}), Vote(("a:x", "a:y"), "tie")) == 1


# -- the log ---------------------------------------------------------------------------------------

def test_the_log_keeps_votes_in_order_and_skips_a_damaged_row(tmp_path):
    log = ConversationLog(connect(tmp_path / "log.db"), warn=print, path=tmp_path / "log.db")
    first = Vote(("a:x", "b:y", "c:z"), "win", "b:y", True, "limerick ✓")
    assert log.add_vote(first) == 1 and log.add_vote(Vote(("a:x", "b:y"), "bad")) == 2
    log.db.execute("INSERT INTO votes (created_at, models, winner, outcome, blind, prompt)"
                   " VALUES (0, '[\"a:x\"]', NULL, 'tie', 0, '')")  # one model: not a vote any more
    votes = log.votes()
    assert votes == [first, Vote(("a:x", "b:y"), "bad")] and votes[0].created_at > 0
    readonly = ConversationLog(log.db, warn=print, write=False)
    assert readonly.add_vote(first) is None


def test_a_log_from_before_votes_gets_the_table_when_opened(tmp_path):
    import sqlite3

    from streamchat.store_schema import MIGRATIONS, SCHEMA_VERSION, V11, statements

    path = tmp_path / "log.db"
    db = sqlite3.connect(path, isolation_level=None)
    before = [m() for m in MIGRATIONS].index(V11)
    for number, script in enumerate(MIGRATIONS[:before], 1):  # a log as the version before votes left it
        for statement in statements(script()):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    db.close()
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0


# -- `streamchat history votes` -------------------------------------------------------------------

def test_history_votes_empty_then_a_leaderboard_as_rows_and_json(invoke, home):
    empty = invoke("history", "votes")
    assert (empty.code, empty.out) == (0, "") and "no votes yet" in empty.stderr
    assert json.loads(invoke("history", "votes", "--json").out) == []
    log = ConversationLog(connect(home / "log.db"), warn=print, path=home / "log.db")
    log.add_vote(Vote(("compat:fast", "compat:slow"), "win", "compat:fast", True))
    log.add_vote(Vote(("compat:fast", "compat:slow"), "win", "compat:slow"))
    log.add_vote(Vote(("compat:fast", "compat:slow", "compat:third"), "win", "compat:fast"))
    log.add_vote(Vote(("compat:fast", "compat:slow"), "bad"))
    rows = invoke("history", "votes")
    assert rows.code == 0 and rows.stderr == ""
    assert rows.out.splitlines() == ["compat:fast\t2\t1\t1\t0.500\t4", "compat:slow\t1\t2\t1\t0.250\t4",
                                     "compat:third\t0\t1\t0\t0.000\t1"]
    board = json.loads(invoke("history", "votes", "--json").out)
    assert board[0] == {"model": "compat:fast", "wins": 2, "losses": 1, "ties": 1, "both_bad": 1, "votes": 4,
                        "win_rate": 0.5}


# -- the endpoint, through a real serve process ----------------------------------------------------

@pytest.mark.e2e
def test_the_vote_endpoint_refuses_foreign_origins_unknown_models_and_big_bodies(tmp_path, server, invoke):
    proc = ServeProcess(tmp_path, server, "-m", "compat:slow", "--allow-model", "compat:fast")
    try:
        url = f"{proc.url}/vote"
        vote = {"models": ["compat:slow", "compat:fast"], "winner": "compat:fast", "outcome": "win", "blind": True,
                "prompt": "hi"}
        for origin in ("http://evil.com", "null"):
            r = httpx.post(url, json=vote, headers={"Origin": origin})
            assert (r.status_code, r.json()["error"]["code"]) == (403, "origin_not_allowed")
        assert httpx.post(url, json=vote, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert httpx.post(url, content=json.dumps(vote), headers={"Content-Type": "text/plain"}).status_code == 415
        r = httpx.post(url, json={**vote, "models": ["compat:slow", "compat:other"], "winner": None, "outcome": "tie"})
        assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
        big = {**vote, "prompt": "x" * MAX_VOTE_BYTES}
        assert httpx.post(url, json=big).status_code == 413
        chunked = httpx.post(url, content=iter([json.dumps(big).encode()]), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413  # no Content-Length: counted while read
        r = httpx.post(url, json=vote, headers={"Origin": proc.url})
        assert r.status_code == 201 and r.json()["winner"] == "compat:fast"
    finally:
        proc.stop()
    board = json.loads(invoke("history", "votes", "--json").out)  # the same log (STREAMCHAT_DB) as serve's
    assert [(s["model"], s["wins"], s["losses"]) for s in board] == [("compat:fast", 1, 0), ("compat:slow", 0, 1)]
