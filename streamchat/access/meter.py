"""A serve process's side of access keys: recognising a key, admitting a request (reserve before)
and recording what it cost (settle after), priced by `cost.turn_cost`, as the CLI prices a turn.

The store is called on the event loop: an admission is one transaction (SQLite) or one script
(Redis, through its asyncio client, so the round trip does not hold the loop), a fraction of a
millisecond, and a thread hop would cost as much as the call.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass

from streamchat.access.limits import Verdict
from streamchat.access.records import KeyRecord, SpendEntry, key_hash, to_nano
from streamchat.access.state import AccessState, Ask
from streamchat.config import ProviderConfig, Settings
from streamchat.events import Stats, TurnResult

RECHECK_S = 1.0  # a key's record is read again after this long: a revoked key stops within a second
BUSY_WAIT_S = 60.0  # longest wait for requests in flight to settle before refusing
DEFAULT_OUTPUT = 4096  # output tokens reserved for a request that sets no max_tokens
CACHE_CAP = 4096


class Denied(Exception):
    """The store's verdict against a request (not OK), with the key's name and any wait."""

    def __init__(self, verdict: Verdict, name: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(verdict.value)
        self.verdict, self.name, self.retry_after = verdict, name, retry_after


@dataclass(frozen=True)
class Price:
    """A request's estimate: tokens in and out, and what that costs (None: the model has no price)."""

    provider: ProviderConfig
    model: str
    input_tokens: int
    output_tokens: int
    cost: int | None


@dataclass
class Ticket:
    """An admitted request, until it is settled."""

    hashed: str
    ticket: str
    name: str
    price: Price
    started: float
    settled: bool = False


class Meter:
    def __init__(self, state: AccessState, settings: Settings) -> None:
        self.state, self.settings = state, settings
        self._seen: dict[str, tuple[float, KeyRecord | None]] = {}
        self._prices: dict[tuple[str, str], tuple[float, float] | None] = {}

    def record(self, key: str) -> KeyRecord | None:
        """The key's record (None: unknown, revoked or expired), read from the store at most once a second."""
        hashed, now = key_hash(key), time.monotonic()
        seen = self._seen.get(hashed)
        if seen is None or now - seen[0] > RECHECK_S:
            if len(self._seen) >= CACHE_CAP:
                self._seen.clear()
            found = self.state.find(hashed)
            if found is not None and (found.revoked is not None or found.expires is not None and found.expires <= time.time()):
                found = None
            seen = self._seen[hashed] = (now, found)
        return seen[1]

    def price(self, deployments: list[tuple[ProviderConfig, str]], inputs: int, max_tokens: int | None) -> Price:
        """The most a request should cost: its estimated input and max_tokens (or the config's, or
        DEFAULT_OUTPUT) of output, at the dearest of the deployments that may answer it (a route's
        fallback may be dearer than its first); None when one of them has no known price."""
        outputs = max_tokens or self.settings.max_tokens or DEFAULT_OUTPUT
        costs = []
        for provider, model in deployments:
            rates = self._rates(provider, model)
            costs.append(None if rates is None else inputs * rates[0] + outputs * rates[1])
        worst = None if any(c is None for c in costs) else max(c or 0.0 for c in costs)
        provider, model = deployments[0]
        return Price(provider, model, inputs, outputs, None if worst is None else math.ceil(worst))

    def _rates(self, provider: ProviderConfig, model: str) -> tuple[float, float] | None:
        """Nanodollars per input and per output token, read once per model: the price database's
        calculation takes ~0.3 ms, too much for every request. Priced at a million tokens, where a
        tiered price is at its dearest, so the estimate stays an upper bound."""
        from streamchat.cost import turn_cost

        key = (provider.name, model)
        if key not in self._prices:
            million = 1_000_000
            per_in = turn_cost(self.settings, provider, model, Stats(input_tokens=million, tokens=0))
            per_out = turn_cost(self.settings, provider, model, Stats(input_tokens=0, tokens=million))
            if len(self._prices) >= CACHE_CAP:
                self._prices.clear()
            self._prices[key] = None if per_in is None or per_out is None else (to_nano(per_in) / million,
                                                                               to_nano(per_out) / million)
        return self._prices[key]

    async def admit(self, key: str, names: tuple[str, ...], price: Price) -> Ticket:
        """Admit the request or raise Denied; while requests in flight hold what is left of the
        budget, wait for them to settle (up to BUSY_WAIT_S), then decide on what they spent."""
        hashed = key_hash(key)
        deadline = time.monotonic() + BUSY_WAIT_S
        pause = 0.01
        while True:
            got = await self.state.admit_async(hashed, Ask(names, price.cost or 0, time.time()))
            if got.verdict is Verdict.OK and got.ticket is not None and got.name is not None:
                return Ticket(hashed, got.ticket, got.name, price, time.monotonic())
            if got.verdict is not Verdict.BUSY:
                raise Denied(got.verdict, got.name, got.retry_after)
            if time.monotonic() > deadline:
                raise Denied(Verdict.BUSY, got.name, 1.0)
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.1)

    def settle(self, ticket: Ticket, result: TurnResult, answered: tuple[ProviderConfig, str] | None = None) -> None:
        """Record the request's tokens and cost (the upstream's usage; without it, the prompt's
        estimate and the tokens that streamed) under the deployment that `answered`, and free its
        reservation. Once per ticket."""
        entry = self._entry(ticket, result, answered)
        if entry is not None:
            self.state.settle(ticket.hashed, ticket.ticket, entry)

    async def settle_async(self, ticket: Ticket, result: TurnResult,
                           answered: tuple[ProviderConfig, str] | None = None) -> None:
        """`settle` on the event loop (a remote store's round trip awaited, not held)."""
        entry = self._entry(ticket, result, answered)
        if entry is not None:
            await self.state.settle_async(ticket.hashed, ticket.ticket, entry)

    def _entry(self, ticket: Ticket, result: TurnResult, answered: tuple[ProviderConfig, str] | None) -> SpendEntry | None:
        """The spend log's line for the ticket (None: settled already)."""
        if ticket.settled:
            return None
        ticket.settled = True
        from streamchat.cost import turn_cost

        stats, price = result.stats, ticket.price
        provider, model = answered or (price.provider, price.model)
        cost = stats.cost_usd
        inputs = stats.input_tokens if stats.input_tokens is not None else price.input_tokens
        if cost is None and price.cost is not None:
            cost = turn_cost(self.settings, provider, model, Stats(input_tokens=inputs, tokens=stats.tokens))
        status = "ok" if result.ok else result.error.code if result.error is not None else result.outcome.value
        return SpendEntry(time.time(), ticket.name, f"{provider.name}:{model}", inputs, stats.tokens,
                          None if cost is None else to_nano(cost), (time.monotonic() - ticket.started) * 1000, status)

    def refused(self, denied: Denied, model: str) -> None:
        """A known key's refused request, in the spend log as an error."""
        if denied.name is not None and denied.verdict not in (Verdict.UNKNOWN, Verdict.REVOKED, Verdict.EXPIRED):
            self.log_refusal(denied.name, model, STATUS[denied.verdict])

    def log_refusal(self, name: str, model: str, status: str) -> None:
        """A request of key `name` refused before it started, in the spend log as an error."""
        self.state.log(SpendEntry(time.time(), name, model, status=status))


STATUS = {Verdict.MODEL: "model_not_allowed", Verdict.EXHAUSTED: "insufficient_quota", Verdict.BUSY: "insufficient_quota",
          Verdict.RPM: "rate_limited", Verdict.TPM: "rate_limited"}
