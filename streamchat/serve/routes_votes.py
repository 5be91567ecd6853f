"""`POST /vote`: the page's verdict on a compare-mode round, stored in the conversation log.

The request passes the same gate as every other (Host, Origin, token, declared size); its body is
read with a small bound of its own; it may name only models this server offers (the same decision
as a request streaming from them) and, with `--keys`, that the request's key may use (403
otherwise). They are stored by their resolved `provider:model` names (a route by its name) so
aliases and the terminal's races count for the same model on `streamchat history votes`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamchat.config import Settings
from streamchat.leaderboard import MAX_MODELS, MIN_MODELS, OUTCOMES, Vote
from streamchat.serve.gate import bearer, refused
from streamchat.serve.http_io import read_body
from streamchat.serve.policy import ModelPolicy, Refused
from streamchat.serve.state import serve_state

log = logging.getLogger("streamchat.serve")

router = APIRouter()

MAX_VOTE_BYTES = 16 * 1024  # a vote is a few names and the question's opening words
MAX_PROMPT_CHARS = 4000
KEYS = frozenset({"models", "winner", "outcome", "blind", "prompt"})


def _bad(param: str, what: str) -> Refused:
    return Refused(400, f"'{param}' {what}", "invalid_request", param=param)


def voted_name(settings: Settings, spec: str) -> str:
    """The name a vote counts a model under: a route's own name (its deployments take turns), else
    the `provider:model` an alias or a bare name resolves to."""
    route = settings.route(spec)
    if route is not None:
        return route.name
    cfg, model = settings.resolve(spec)
    return f"{cfg.name}:{model}"


def parse_vote(body: dict[str, Any], models: ModelPolicy, settings: Settings,
               may_use: Callable[[str, tuple[str, ...]], None] | None = None) -> Vote:
    """A checked vote: 2–3 offered models (by their resolved names), an outcome, the winner if any.
    `may_use(name, names)` refuses a model the request's access key may not use (`serve --keys`)."""
    unknown = sorted(set(body) - KEYS)
    if unknown:
        raise _bad(unknown[0], "is not a vote field (models, winner, outcome, blind, prompt)")
    names = body.get("models")
    if not isinstance(names, list) or not MIN_MODELS <= len(names) <= MAX_MODELS:
        raise _bad("models", f"must be a list of {MIN_MODELS} or {MAX_MODELS} model names")
    if not all(isinstance(n, str) and n for n in names):
        raise _bad("models", "must hold model names (non-empty strings)")
    winner = body.get("winner")
    if winner is not None and winner not in names:
        raise _bad("winner", "must be one of 'models', or null")
    outcome, blind, prompt = body.get("outcome"), body.get("blind", False), body.get("prompt", "")
    if outcome not in OUTCOMES:
        raise _bad("outcome", f"must be one of {', '.join(OUTCOMES)}")
    if not isinstance(blind, bool):
        raise _bad("blind", "must be true or false")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise _bad("prompt", f"must be a string of at most {MAX_PROMPT_CHARS} characters")
    resolved = {}
    for name in names:
        models.choose(name)  # 404 for a model this server does not offer
        resolved[name] = voted_name(settings, name)
        if may_use is not None:  # 403 for one the key may not use: by the name given or the one resolved
            may_use(name, tuple(dict.fromkeys((name, resolved[name]))))
    try:
        return Vote(tuple(resolved[n] for n in names), outcome, resolved.get(winner) if winner else None, blind, prompt)
    except ValueError as exc:  # the same model twice (perhaps by an alias and its name), a winner without 'win'
        raise Refused(400, str(exc), "invalid_vote") from None


def store_vote(settings: Settings, vote: Vote) -> int:
    """Append the vote to the log (blocking: run it in a thread). Refused when the log is off or fails."""
    from streamchat.store import open_log

    if not settings.log:
        raise Refused(409, "votes are kept in the conversation log, which is off on this server (log = false)",
                      "log_off")
    conversation_log = open_log(enabled=True, warn=log.warning)
    try:
        vote_id = conversation_log.add_vote(vote)
    finally:
        if conversation_log.db is not None:
            conversation_log.db.close()
    if vote_id is None:
        raise Refused(500, "the vote could not be stored (serve's log says why)", "log_unavailable")
    return vote_id


@router.post("/vote")
async def post_vote(request: Request) -> Response:
    state = serve_state(request)
    keys = state.keys
    may_use = None if keys is None else functools.partial(keys.check_model, bearer(request.headers, None))
    try:
        vote = parse_vote(await read_body(request, MAX_VOTE_BYTES), state.models, state.settings, may_use)
        vote_id = await asyncio.to_thread(store_vote, state.settings, vote)
    except Refused as err:
        return refused(err)
    return JSONResponse({"id": vote_id, "models": list(vote.models), "winner": vote.winner, "outcome": vote.outcome},
                        status_code=201)
