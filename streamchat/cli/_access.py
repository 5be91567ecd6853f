"""`access`: create, list, revoke and account for the keys `streamchat serve --keys` admits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from streamchat.access.records import MAX_PER_MINUTE
from streamchat.cli._app import ConfigOpt, DebugOpt, _command, _globals, _number_in, app
from streamchat.environment import Environment
from streamchat.ui import UI, plural

if TYPE_CHECKING:
    from streamchat.access.state import AccessState
    from streamchat.config import Settings

STATE_VAR = "STREAMCHAT_STATE"  # serve --state reads it too

access_app = typer.Typer(help="Access keys for serve --keys: budgets, rate limits, models, spend.",
                         short_help="Access keys for serve --keys.",
                         rich_markup_mode=None, add_completion=False, invoke_without_command=True)
app.add_typer(access_app, name="access")

StateOpt = Annotated[Optional[str], typer.Option(
    "--state", envvar=STATE_VAR, show_envvar=False, metavar="URL",
    help="Where keys and spend live: redis://HOST:PORT/DB shared by several servers, or a SQLite file's "
         f"PATH (/srv/keys.db, ./keys.db) [env: {STATE_VAR}; default: access.db in the data dir].")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="The key's name.")]


@contextlib.contextmanager
def _state(ctx: typer.Context, state: Optional[str], config: Optional[Path], debug: bool
           ) -> Iterator[tuple[AccessState, Environment, UI]]:
    from streamchat.access.stores import open_state

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (_settings, env, ui):
        store = open_state(state)
        try:
            yield store, env, ui
        finally:
            store.close()


@access_app.callback()
def access_default(ctx: typer.Context, state: StateOpt = None, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List the keys (as `access list`), or run an access subcommand."""
    if ctx.invoked_subcommand is None:
        access_list(ctx, state=state, config=config, debug=debug)


@access_app.command("create", help="Make a key; it is printed once, on stdout, and stored only as its hash.",
                    short_help="Make a key (printed once, stored hashed).")
def access_create(
    ctx: typer.Context,
    name: NameArg,
    budget: Annotated[Optional[str], typer.Option("--budget", metavar="USD", help="Spend allowed per --period, in dollars.")] = None,
    period: Annotated[str, typer.Option("--period", metavar="day|month|total", help="The budget's period (UTC).")] = "total",
    rpm: Annotated[Optional[int], typer.Option(
        "--rpm", metavar="N", callback=_number_in(1, MAX_PER_MINUTE), help="Requests per minute.")] = None,
    tpm: Annotated[Optional[int], typer.Option(
        "--tpm", metavar="N", callback=_number_in(1, MAX_PER_MINUTE), help="Tokens per minute.")] = None,
    models: Annotated[Optional[str], typer.Option("--models", metavar="M,…",
                                                  help="Only these models (as clients name them, or PROVIDER:MODEL).")] = None,
    expires: Annotated[Optional[str], typer.Option("--expires", metavar="AGE", help="Stop working after AGE (30d, 12h…).")] = None,
    state: StateOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.access.records import (
        KeyRecord,
        check_name,
        key_hash,
        new_key,
        parse_budget,
        parse_expires,
        parse_models,
        parse_period,
    )

    # every input checked before the store is touched
    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, _env, ui):
        now = time.time()
        record = KeyRecord(name=check_name(name), budget=parse_budget(budget) if budget is not None else None,
                           period=parse_period(period), rpm=rpm, tpm=tpm, models=parse_models(models) if models is not None else (),
                           created=now, expires=now + parse_expires(expires) if expires is not None else None)
        unknown = _unresolvable(settings, record.models)
        if unknown:  # a warning: serve's own config (another machine on a shared --state) may know them
            names = ", ".join(repr(m) for m in unknown)
            ui.warn(f"warning: --models: no provider, alias or route in this config knows {names}; the key can use "
                    "such a name only on a serve whose config does (`streamchat models` lists the names here)")
    with _state(ctx, state, config, debug) as (store, env, ui):
        key = new_key()
        store.create(record, key_hash(key))
        env.stdout.write(key + "\n")
        until = f"; expires {_when(record.expires)}" if record.expires is not None else ""
        ui.notice(f"key '{name}' created ({record.limits_text()}{until}) in {store.where}; it is shown only this once")


def _unresolvable(settings: Settings, models: tuple[str, ...]) -> list[str]:
    """The `--models` names that neither a route, an alias nor a provider (`provider:model`, or a bare
    model one provider offers) here resolves, as serve resolves a request's model."""
    from streamchat.errors import StreamchatError

    unknown = []
    for model in models:
        if settings.route(model) is not None:
            continue
        try:
            settings.resolve(model)
        except StreamchatError:
            unknown.append(model)
    return unknown


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


@access_app.command("list", help="Each key: name, state, limits, spend this period, last use, expiry (never the key).",
                    short_help="Each key's state, limits, spend and expiry.")
def access_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per key.")] = False,
    state: StateOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    import json

    from streamchat.access.records import to_usd, usd

    with _state(ctx, state, config, debug) as (store, env, ui):
        now = time.time()
        statuses = store.statuses(now)
        if not statuses:
            ui.notice(f"no keys in {store.where}; make one with: streamchat access create NAME")
        for s in statuses:
            r = s.record
            condition = "revoked" if r.revoked else "expired" if r.expires is not None and r.expires <= now else "active"
            if as_json:
                env.stdout.write(json.dumps({
                    "name": r.name, "state": condition, "limits": r.limits_text(), "spent_usd": to_usd(s.spent),
                    "budget_usd": None if r.budget is None else to_usd(r.budget), "period": r.period,
                    "last_used": _iso(s.last_used), "created": _iso(r.created), "expires": _iso(r.expires),
                    "revoked": _iso(r.revoked)}) + "\n")
                continue
            spent = usd(s.spent) + (f"/{usd(r.budget)}" if r.budget is not None else "")
            expiry = "no expiry" if r.expires is None else f"{'expired' if r.expires <= now else 'expires'} {_when(r.expires)}"
            env.stdout.write(f"{r.name}\t{condition}\t{r.limits_text()}\t{spent}\t{_when(s.last_used)}\t{expiry}\n")


def _iso(ts: float | None) -> str | None:
    """A time for --json: ISO 8601 in UTC, to the second."""
    import datetime

    return None if not ts else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


@access_app.command("revoke", help="Stop a key; a running server refuses it within a second.",
                    short_help="Stop a key (refused within a second).")
def access_revoke(ctx: typer.Context, name: NameArg, state: StateOpt = None, config: ConfigOpt = None,
                  debug: DebugOpt = False) -> None:
    with _state(ctx, state, config, debug) as (store, _env, ui):
        store.revoke(name, time.time())
        ui.notice(f"key '{name}' revoked")


@access_app.command("usage", help="Requests, tokens, cost and errors per key and model, from the spend log.",
                    short_help="Requests, tokens and cost per key and model.")
def access_usage(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", metavar="AGE", help="Only requests within AGE (7d, 12h…).")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per key and model.")] = False,
    state: StateOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    import json

    from streamchat.access.records import usage_dict, usage_rows, usd

    with _command(_globals(ctx).merge(config=config, debug=debug)):
        from streamchat.history import duration

        start = time.time() - duration(since)
    with _state(ctx, state, config, debug) as (store, env, _ui):
        rows = usage_rows(store.entries(start))
        for row in rows:
            if as_json:
                env.stdout.write(json.dumps(usage_dict(row)) + "\n")
            else:
                env.stdout.write(f"{row.name}\t{row.model}\t{plural(row.requests, 'request')}\t"
                                 f"{row.input_tokens}+{row.output_tokens} tokens\t{usd(row.cost)}\t{plural(row.errors, 'error')}\n")
        if not as_json and rows:
            total = sum(r.cost for r in rows)
            env.stdout.write(f"total\t\t{plural(sum(r.requests for r in rows), 'request')}\t\t{usd(total)}\t"
                             f"{plural(sum(r.errors for r in rows), 'error')}\n")
