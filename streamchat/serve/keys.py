"""`serve --keys`: every request carries an access key (or the server's admin token), and every
turn is metered — admitted against its key's limits before it starts, its cost recorded when it
ends, however it ends. And `GET /v1/usage`, the spend log summed, for the admin token.

The gate (`gate.Gate`) asks `Keys.allows` on every request; `ServeState.turn` asks `Keys.admit`
for each turn, and the turn's stream settles its ticket when it ends. A store that cannot be
reached refuses the request with 503: nothing is answered unmetered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamchat.access.limits import Verdict
from streamchat.access.meter import Denied, Meter, Ticket
from streamchat.access.records import looks_like_key, usage_dict, usage_rows
from streamchat.access.state import AccessState, StateUnavailable
from streamchat.config import ProviderConfig, Settings
from streamchat.errors import StreamchatError
from streamchat.events import TurnResult
from streamchat.serve.gate import bearer, refused
from streamchat.serve.parse import Call
from streamchat.serve.policy import Refused
from streamchat.service import ChatSession

log = logging.getLogger("streamchat.serve")

def unavailable() -> Refused:
    return Refused(503, "the access store cannot be reached: try again shortly", "state_unavailable",
                   headers={"Retry-After": "1"})


def _refusal(denied: Denied) -> Refused:
    name = f"key '{denied.name}'" if denied.name else "the access key"
    if denied.verdict in (Verdict.UNKNOWN, Verdict.REVOKED, Verdict.EXPIRED):
        said = {Verdict.UNKNOWN: "is not known", Verdict.REVOKED: "was revoked", Verdict.EXPIRED: "has expired"}
        return Refused(401, f"{name} {said[denied.verdict]}", "invalid_api_key")
    if denied.verdict is Verdict.MODEL:
        return Refused(403, f"{name} may not use this model", "model_not_allowed")
    wait = {"Retry-After": str(max(1, math.ceil(denied.retry_after)))} if denied.retry_after is not None else None
    if denied.verdict in (Verdict.EXHAUSTED, Verdict.BUSY):
        return Refused(429, f"{name} has used its budget", "insufficient_quota", headers=wait)
    per_minute = "requests" if denied.verdict is Verdict.RPM else "tokens"
    return Refused(429, f"{name} is over its {per_minute} per minute: retry after {wait['Retry-After'] if wait else '?'} s",
                   "rate_limit_exceeded", headers=wait)


def input_bound(session: ChatSession, call: Call) -> int:
    """At least the request's input tokens, so a reservation is never below what the answer costs
    (given max_tokens): a byte-level BPE token covers at least one byte, and each message is framed
    by a few tokens. For English text this is about four times the real count."""
    parts = [m.content + "".join(c.name + c.arguments for c in m.tool_calls)
             for m in call.messages]
    parts += [session.system_prompt(None) or "", repr(call.tools) if call.tools else "", repr(call.schema) if call.schema else ""]
    return sum(len(p.encode("utf-8", "surrogatepass")) for p in parts) + 4 * (len(call.messages) + 1)


def model_names(settings: Settings, spec: str) -> tuple[str, ...]:
    """Every name a key's `--models` may give a model by: as asked, and as it resolves (a route by
    its name, else `provider:model`) — the names `Keys.admit` hands the store."""
    route = settings.route(spec)
    if route is not None:
        return tuple(dict.fromkeys((spec, route.name)))
    try:
        cfg, model = settings.resolve(spec)
    except StreamchatError:
        return (spec,)
    return tuple(dict.fromkeys((spec, f"{cfg.name}:{model}")))


class Keys:
    """The server's access keys: who may ask (`allows`), and each turn's admission and settlement."""

    def __init__(self, state: AccessState, settings: Settings, token: str | None) -> None:
        self.meter = Meter(state, settings)
        self.token = token
        if settings.routes:  # every worker (and server) on the store skips a deployment one of them saw fail
            from streamchat.routing import share_cooldowns

            share_cooldowns(state)
        self._settling: set[asyncio.Task[None]] = set()

    def is_admin(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), (self.token or "").encode())

    def allows(self, given: str) -> bool:
        """The admin token, or a key that is known, not revoked and not expired (re-read each second)."""
        if self.is_admin(given):
            return True
        if not looks_like_key(given):
            return False
        try:
            return self.meter.record(given) is not None
        except StateUnavailable:
            raise unavailable() from None

    def _limited_to(self, given: str) -> tuple[str | None, tuple[str, ...]]:
        """The key's name and the models it is limited to (none: any); the admin token's are (None, ())."""
        if self.is_admin(given):
            return None, ()
        try:
            record = self.meter.record(given)
        except StateUnavailable:
            raise unavailable() from None
        if record is None:  # revoked since the gate let it in
            raise Refused(401, "the access key is not valid", "invalid_api_key")
        return record.name, record.models

    def usable(self, given: str, offered: dict[str, tuple[str, ...]]) -> list[str]:
        """Of the `offered` models (each with every name it goes by), those the credential may use:
        the admin token and a key without `--models` any; a limited key, those that match one of its
        models by a name, as the store decides when it admits a turn."""
        _name, models = self._limited_to(given)
        return [m for m, names in offered.items() if not models or not set(names).isdisjoint(models)]

    def check_model(self, given: str, shown: str, names: tuple[str, ...]) -> None:
        """403 when the credential may not use the model `shown` (going by `names`)."""
        name, models = self._limited_to(given)
        if models and set(names).isdisjoint(models):
            raise Refused(403, f"key '{name}' may not use model {shown!r}", "model_not_allowed")

    async def admit(self, given: str, session: ChatSession, call: Call) -> Ticket | None:
        """Reserve the turn against its key (None: the admin's turn, not metered), or refuse it."""
        if self.is_admin(given):
            return None
        target, settings = session.target, session.settings
        route = settings.routes.get(target.route) if target.route else None
        deployments = ([(d.provider, d.model) for d in route.deployments] if route is not None
                       else [(settings.providers[target.provider_name], target.model)])
        price = self.meter.price(deployments, input_bound(session, call), call.max_tokens)
        requested = call.model if isinstance(call.model, str) else None
        # a key limited to models matches the name asked, the alias's target, or provider:model — a route by its name
        names = tuple(dict.fromkeys(n for n in (requested, session.model_name, target.name) if n))
        try:
            record = self.meter.record(given)
            if record is None:
                raise Refused(401, "the access key is not valid", "invalid_api_key")
            if record.budget is not None and price.cost is None:  # refused, and logged as every refusal is
                with contextlib.suppress(StateUnavailable):
                    self.meter.log_refusal(record.name, f"{target.provider_name}:{target.model}", "model_not_priced")
                raise Refused(403, f"key '{record.name}' has a budget, and {session.model_name} has no known price "
                                   "(set one with [prices] in the server's config)", "model_not_priced")
            return await self.meter.admit(given, names, price)
        except Denied as denied:
            with contextlib.suppress(StateUnavailable):
                self.meter.refused(denied, f"{target.provider_name}:{target.model}")
            raise _refusal(denied) from None
        except StateUnavailable:
            raise unavailable() from None

    def settle(self, ticket: Ticket, session: ChatSession, result: TurnResult) -> None:
        """Record the turn under the deployment that answered it (a route's may not be its first).
        A remote store's settlement is a task on the loop: the response does not wait for the round
        trip (~1 ms under load), and until it is done the turn's reservation still holds its part of
        the budget. (It was a worker thread's: under load, the thread and the loop handing the GIL
        back and forth cost the next request.) SQLite's stays in line: on a thread it contended with
        the next admission for the write lock, whose busy handler sleeps in milliseconds."""
        provider, model = session.target.answered()
        answered = (session.settings.providers[provider], model)
        if self.meter.state.remote:
            with contextlib.suppress(RuntimeError):  # no loop running: settle here
                task = asyncio.get_running_loop().create_task(self._settle_async(ticket, result, answered))
                self._settling.add(task)  # the loop keeps only a weak reference
                task.add_done_callback(self._settling.discard)
                return
        try:
            self.meter.settle(ticket, result, answered)
        except StreamchatError as err:  # the answer is done; its reservation lapses by itself
            log.warning("could not record a request of key '%s': %s", ticket.name, err)

    async def _settle_async(self, ticket: Ticket, result: TurnResult, answered: tuple[ProviderConfig, str]) -> None:
        try:
            await self.meter.settle_async(ticket, result, answered)
        except StreamchatError as err:
            log.warning("could not record a request of key '%s': %s", ticket.name, err)


router = APIRouter()


@router.get("/v1/usage")
async def usage(request: Request, since: str = "7d") -> Response:
    """The spend log summed per key and model, as `access usage --json`: for the admin token only."""
    from streamchat.history import duration

    keys: Keys | None = request.app.state.serve.keys  # the ServeState's (not imported here: it imports this module)
    try:
        if keys is None or not keys.is_admin(bearer(request.headers, None)):
            raise Refused(403, "usage is for the server's admin token (STREAMCHAT_TOKEN), not an access key", "admin_only")
        try:
            start = time.time() - duration(since)
        except StreamchatError as err:
            raise Refused(400, f"'since': {err.message}", "invalid_request", param="since") from None
        try:
            rows = usage_rows(keys.meter.state.entries(start))
        except StateUnavailable:
            raise unavailable() from None
    except Refused as err:
        return refused(err)
    data: list[dict[str, Any]] = [usage_dict(row) for row in rows]
    return JSONResponse({"object": "list", "since": start, "data": data})
