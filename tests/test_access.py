"""Access keys: the window and budget arithmetic (pure), and the two stores held to one scenario —
SQLite in a tmp dir, and a real redis-server (its Lua scripts must do what `limits` does)."""

from __future__ import annotations

import time

import pytest
from import_probe import imported_by

from streamchat.access.limits import MINUTE, Verdict, budget_verdict, period_id, refill, take, wait_for
from streamchat.access.records import (
    KeyRecord,
    SpendEntry,
    key_hash,
    new_key,
    parse_budget,
    parse_models,
    to_nano,
    usage_rows,
    usd,
)
from streamchat.access.redis_state import FIELDS, LOG, RedisState, _fields
from streamchat.access.state import Ask, StateUnavailable
from streamchat.access.stores import check_url, open_state
from streamchat.errors import UsageError

T0 = time.time() // 86400 * 86400 - 12 * 3600  # yesterday at noon UTC: in the past for the Redis log's ids


def test_bucket_refills_at_its_rate_and_never_above_capacity():
    assert refill(None, None, T0, 5) == 5
    assert refill(0.0, T0, T0 + 12, 5) == pytest.approx(1.0)  # 5 a minute: one every 12 s
    assert refill(0.0, T0, T0 + 3600, 5) == 5
    assert refill(2.0, T0, T0 - 5, 5) == 2.0  # a clock that stepped back refills nothing


def test_take_admits_a_burst_then_says_how_long_to_wait():
    level, at, admitted, waits = None, None, 0, []
    for i in range(8):
        now = T0 + i * 0.01
        after, wait = take(level, at, now, 5, 1)
        if wait is None:
            level, at, admitted = after, now, admitted + 1
        else:
            waits.append(wait)
    assert admitted == 5 and len(waits) == 3
    assert all(11.5 < w <= 12.0 for w in waits)


def test_a_token_debt_delays_the_next_request_exactly():
    level = refill(None, None, T0, 600) - 1200  # an answer twice the tpm: 600 tokens in debt
    assert wait_for(level, 1, 600) == pytest.approx((600 + 1) * MINUTE / 600)


@pytest.mark.parametrize(("budget", "spent", "reserved", "in_flight", "estimate", "verdict"), [
    (None, 10**12, 0, 0, 10, Verdict.OK),
    (100, 100, 0, 0, 1, Verdict.EXHAUSTED),
    (100, 99, 0, 0, 500, Verdict.OK),  # alone, a request may go over: by itself, never several at once
    (100, 50, 40, 1, 20, Verdict.BUSY),  # in-flight reservations hold the rest: wait for them
    (100, 50, 30, 1, 20, Verdict.OK),
])
def test_budget_verdict(budget, spent, reserved, in_flight, estimate, verdict):
    assert budget_verdict(budget, spent, reserved, in_flight, estimate) is verdict


def test_periods_are_utc_days_and_months():
    t = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert period_id("day", t) == "2027-01-15" and period_id("month", t) == "2027-01" and period_id("total", t) == "total"


@pytest.mark.parametrize("text", ["0", "-1", "abc", "nan", "inf", "", "0.0000000001"])
def test_a_budget_must_be_a_positive_amount(text):
    with pytest.raises(UsageError, match="--budget must be a positive number"):
        parse_budget(text)


def test_budgets_and_keys():
    assert parse_budget("$0.0006") == 600_000 and to_nano(0.00012) * 5 == parse_budget("0.0006")
    assert parse_models(" a:b, c ,a:b") == ("a:b", "c")
    key = new_key()
    assert key.startswith("sk-sc-") and len(key) > 40 and key_hash(key) != key_hash(new_key())


@pytest.mark.parametrize(("nano", "shown"), [
    (0, "$0"), (600_000, "$0.0006"), (30_000, "$0.00003"), (123_456, "$0.00012"), (150_000_000, "$0.1500"),
    (999_999_999, "$1.00"), (5_250_000_000, "$5.25"), (1, "$0.000000001"),
])
def test_dollars_keep_two_significant_digits_below_a_cent(nano, shown):
    assert usd(nano) == shown


def test_access_list_shows_a_tiny_budget_as_it_was_set(invoke, home):
    state = ["--state", f"sqlite:{home / 'access.db'}"]
    created = invoke("access", "create", "tiny", "--budget", "0.00003", *state)
    assert created.code == 0 and "($0.00003/total)" in created.stderr
    listed = invoke("access", "list", *state).out
    assert listed.startswith("tiny\tactive\t$0.00003/total\t$0/$0.00003\t"), listed


@pytest.mark.parametrize("url", ["redis://", "redis://host:port/0", "redis://h:6379/x", "postgres://h/db", "nonsense"])
def test_a_malformed_state_url_is_a_usage_error(url):
    with pytest.raises(UsageError):
        check_url(url)


def test_usage_rows_sum_per_key_and_model():
    rows = usage_rows([SpendEntry(T0, "a", "m", 10, 5, 100), SpendEntry(T0, "a", "m", 1, 1, None, status="server_error"),
                       SpendEntry(T0, "b", "m", 2, 2, 7)])
    assert [(r.name, r.requests, r.input_tokens, r.output_tokens, r.cost, r.unpriced, r.errors) for r in rows] == [
        ("a", 2, 11, 6, 100, 1, 1), ("b", 1, 2, 2, 7, 0, 0)]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def state(request, tmp_path):
    url = f"sqlite:{tmp_path / 'access.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    store = open_state(url)
    yield store
    store.close()


def _ask(now: float, estimate: int = 0, models: tuple[str, ...] = ("openai:gpt-4o-mini",)) -> Ask:
    return Ask(models, estimate, now)


def test_keys_are_found_by_hash_and_refused_once_revoked_or_expired(state):
    state.create(KeyRecord("alice", created=T0), "h1")
    state.create(KeyRecord("bob", created=T0, expires=T0 + 60), "h2")
    assert state.find("h1").name == "alice" and state.find("nope") is None
    assert state.admit("nope", _ask(T0)).verdict is Verdict.UNKNOWN
    assert state.admit("h2", _ask(T0 + 61)).verdict is Verdict.EXPIRED
    with pytest.raises(UsageError, match="exists"):
        state.create(KeyRecord("alice", created=T0), "h3")
    state.revoke("alice", T0 + 1)
    assert state.admit("h1", _ask(T0 + 2)).verdict is Verdict.REVOKED
    with pytest.raises(UsageError, match="no active key named 'alice'"):
        state.revoke("alice", T0 + 3)
    with pytest.raises(UsageError, match="no active key named 'carol'"):
        state.revoke("carol", T0 + 3)
    state.create(KeyRecord("alice", created=T0 + 4), "h4")  # a revoked name can be given a new key
    assert state.admit("h4", _ask(T0 + 5)).verdict is Verdict.OK
    assert state.find("h1") is None
    assert [s.record.name for s in state.statuses(T0 + 5)] == ["alice", "bob"]


def test_a_model_limited_key(state):
    state.create(KeyRecord("m", models=("openai:gpt-4o-mini", "cheap")), "h")
    assert state.admit("h", _ask(T0, models=("anthropic:claude",))).verdict is Verdict.MODEL
    assert state.admit("h", _ask(T0, models=("cheap", "openai:gpt-4o-mini-2024"))).verdict is Verdict.OK


def test_rpm_admits_a_burst_of_n_with_the_wait_after(state):
    state.create(KeyRecord("r", rpm=5), "h")
    verdicts = [state.admit("h", _ask(T0 + i * 0.01)) for i in range(8)]
    assert [v.verdict for v in verdicts] == [Verdict.OK] * 5 + [Verdict.RPM] * 3
    assert all(11.5 < v.retry_after <= 12 for v in verdicts[5:])
    assert state.admit("h", _ask(T0 + 12.1)).verdict is Verdict.OK


def test_tpm_is_charged_after_the_answer(state):
    state.create(KeyRecord("t", tpm=600), "h")
    got = state.admit("h", _ask(T0))
    state.settle("h", got.ticket, SpendEntry(T0 + 1, "t", "m", 1000, 200, 5))
    refused = state.admit("h", _ask(T0 + 2))
    assert refused.verdict is Verdict.TPM
    assert refused.retry_after == pytest.approx((1 + 590) * MINUTE / 600)  # 600 in debt, 10 refilled in 1 s


def test_a_budget_reserves_before_and_settles_after(state):
    state.create(KeyRecord("b", budget=1000), "h")
    first = state.admit("h", _ask(T0, estimate=5000))  # alone: admitted even though its estimate is over
    assert first.verdict is Verdict.OK
    assert state.admit("h", _ask(T0, estimate=10)).verdict is Verdict.BUSY  # the rest is held by the first
    state.settle("h", first.ticket, SpendEntry(T0 + 1, "b", "m", 1, 1, 400))
    assert [s.spent for s in state.statuses(T0 + 1)] == [400]
    second = state.admit("h", _ask(T0 + 1, estimate=300))
    third = state.admit("h", _ask(T0 + 1, estimate=300))
    assert second.verdict is third.verdict is Verdict.OK
    assert state.admit("h", _ask(T0 + 1, estimate=300)).verdict is Verdict.BUSY
    state.settle("h", second.ticket, SpendEntry(T0 + 2, "b", "m", 1, 1, 300))
    state.settle("h", third.ticket, SpendEntry(T0 + 2, "b", "m", 1, 1, 300))
    assert state.admit("h", _ask(T0 + 3, estimate=1)).verdict is Verdict.EXHAUSTED
    assert [(e.name, e.cost) for e in state.entries(T0)] == [("b", 400), ("b", 300), ("b", 300)]


def test_a_daily_budget_starts_again_the_next_day(state):
    state.create(KeyRecord("d", budget=100, period="day"), "h")
    got = state.admit("h", _ask(T0))
    state.settle("h", got.ticket, SpendEntry(T0, "d", "m", 1, 1, 150))
    assert state.admit("h", _ask(T0 + 60)).verdict is Verdict.EXHAUSTED
    assert state.admit("h", _ask(T0 + 86400)).verdict is Verdict.OK


def test_a_reservation_never_settled_lapses(state):
    state.create(KeyRecord("l", budget=100), "h")
    assert state.admit("h", Ask(("m",), 90, T0, hold_s=30)).verdict is Verdict.OK  # its worker died
    assert state.admit("h", _ask(T0 + 10, estimate=90)).verdict is Verdict.BUSY
    assert state.admit("h", _ask(T0 + 31, estimate=90)).verdict is Verdict.OK


def test_the_spend_log_keeps_refusals_and_since(state):
    state.log(SpendEntry(T0, "a", "m", status="rate_limited"))
    state.log(SpendEntry(T0 + 100, "a", "m", 3, 4, 9))
    assert [e.status for e in state.entries(T0 + 50)] == ["ok"]
    assert usage_rows(state.entries(T0))[0].errors == 1


def test_the_spend_log_keeps_two_months_in_either_store(state):
    """The spend log grew forever in both stores (the budgets' counters live in the key's record; the
    log serves `access usage` only). Each write now drops what is older than SPEND_LOG_KEEP_S: this
    month and the whole last one, whatever the day. (Redis ids are its server's clock, so an old
    entry is put there with its own time as its id, as it would have been written then.)"""
    from streamchat.access.state import SPEND_LOG_KEEP_S

    def logged_at(ts: float, name: str) -> None:
        entry = SpendEntry(ts, name, "m", 1, 1, 5)
        if isinstance(state, RedisState):
            state.client.xadd(LOG, dict(zip(FIELDS, _fields(entry), strict=True)), id=f"{int(ts * 1000)}-0")
        else:
            state.log(entry)

    assert SPEND_LOG_KEEP_S >= 62 * 86400  # a month budget's whole previous month, on its last day
    now, day = time.time(), 86400
    logged_at(now - SPEND_LOG_KEEP_S - 2 * day, "old")
    logged_at(now - SPEND_LOG_KEEP_S - day, "older than the next settlement")
    logged_at(now - SPEND_LOG_KEEP_S + 3600, "kept")
    state.log(SpendEntry(now - 1.5 * day, "refused", "m", status="rate_limited"))  # a refusal's line trims
    assert [e.name for e in state.entries(0)] == ["older than the next settlement", "kept", "refused"]
    state.create(KeyRecord("b", budget=1000), "h")
    got = state.admit("h", _ask(now))
    state.settle("h", got.ticket, SpendEntry(now, "b", "m", 1, 1, 10))  # and so does a settlement
    assert [e.name for e in state.entries(0)] == ["kept", "refused", "b"]


@pytest.mark.redis
def test_an_unreachable_redis_is_state_unavailable():
    with pytest.raises(StateUnavailable, match="cannot reach the access store at redis://127.0.0.1:1/0"):
        open_state("redis://127.0.0.1:1/0")


@pytest.mark.e2e
@pytest.mark.parametrize("argv", [["access", "--help"], ["access", "create", "--help"]])
def test_help_imports_neither_redis_nor_an_sdk(argv):
    imported, done = imported_by(argv, ("redis", "openai", "anthropic", "sqlite3"))
    assert imported == set(), done.stderr
    assert "--state URL" in done.stdout


def test_a_reservation_is_priced_at_the_dearest_deployment(tmp_path):
    from streamchat.access.meter import Meter
    from streamchat.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[prices."openai:house"]\ninput = 1.0\noutput = 2.0\n')
    settings = load_settings(config)
    meter = Meter(open_state(f"sqlite:{tmp_path / 'access.db'}"), settings)
    openai = settings.providers["openai"]
    assert meter.price([(openai, "gpt-4o-mini")], 400, 100).cost == 400 * 150 + 100 * 600  # nanodollars a token
    assert meter.price([(openai, "gpt-4o-mini"), (openai, "house")], 400, 100).cost == 400 * 1000 + 100 * 2000
    assert meter.price([(openai, "gpt-4o-mini"), (openai, "no-such-model")], 400, 100).cost is None


def test_access_usage_and_the_repl_count_with_one_plural():
    """Review 9: `access usage` had `_count`, a copy of repl_commands.plural; one function in ui serves both."""
    from streamchat import repl_commands, ui
    from streamchat.cli import _access

    assert _access.plural is ui.plural and repl_commands.plural is ui.plural
    assert (ui.plural(1, "error"), ui.plural(0, "request"), ui.plural(2, "turn")) == ("1 error", "0 requests", "2 turns")
