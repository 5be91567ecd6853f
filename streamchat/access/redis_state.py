"""The access store in Redis, for several serve instances (on several machines) sharing keys,
budgets, rate limits and the spend log.

Admission and settlement are each one Lua script, run atomically by the server: the same steps
as `limits` (the tests run one scenario against both stores). A key's record and its counters are
one hash, `streamchat:access:key:<sha256>`; its reservations in flight another; the spend log is a
stream, trimmed by id (MINID) to SPEND_LOG_KEEP_S as each line is added. Money is integer
nanodollars, formatted with %.0f (Lua's tostring writes 1e+15).
"""

from __future__ import annotations

from typing import Any

from streamchat.access.limits import Verdict, period_id
from streamchat.access.records import KeyRecord, KeyStatus, SpendEntry
from streamchat.access.state import SPEND_LOG_KEEP_S, Admission, Ask, StateUnavailable
from streamchat.errors import UsageError, mask_url

PREFIX = "streamchat:access:"
NAMES = PREFIX + "names"  # name → sha256 of its key
COOLING = PREFIX + "cooling:"  # + a route's name: deployment → until when it cools down (Unix time)
LOG = PREFIX + "log"
TICKETS = PREFIX + "tickets"
CLOCK_SLACK_MS = 300_000  # the log's ids are the Redis server's clock; entries carry the writer's

_REFILL = """
local function refill(level, at, cap, now)
  if not level or level == '' then return cap end
  local l = tonumber(level) + math.max(0, now - tonumber(at)) * cap / 60
  if l > cap then return cap end
  return l
end
local function period_id(period)
  if period == 'day' then return ARGV[2] elseif period == 'month' then return ARGV[3] end
  return 'total'
end
"""

# KEYS: record, reservations, ticket counter. ARGV: now, day id, month id, estimate, deadline, model names (\n)
ADMIT = _REFILL + """
local k = redis.call('HMGET', KEYS[1], 'name', 'revoked', 'expires', 'models', 'budget', 'period', 'spent', 'period_id',
                     'rpm', 'rpm_level', 'rpm_at', 'tpm', 'tpm_level', 'tpm_at')
local name = k[1]
if not name then return {'unknown'} end
local now = tonumber(ARGV[1])
if k[2] and k[2] ~= '' then return {'revoked', name} end
if k[3] and k[3] ~= '' and tonumber(k[3]) <= now then return {'expired', name} end
if k[4] and k[4] ~= '' then
  local allowed = false
  for m in string.gmatch(ARGV[6], '[^\\n]+') do
    if string.find('\\n' .. k[4] .. '\\n', '\\n' .. m .. '\\n', 1, true) then allowed = true break end
  end
  if not allowed then return {'model', name} end
end
local budgeted = k[5] and k[5] ~= ''
if budgeted then
  local in_flight, reserved = 0, 0
  local held = redis.call('HGETALL', KEYS[2])
  for i = 1, #held, 2 do
    local amount, deadline = string.match(held[i + 1], '^(%d+):(.+)$')
    if tonumber(deadline) < now then redis.call('HDEL', KEYS[2], held[i])
    else in_flight = in_flight + 1; reserved = reserved + tonumber(amount) end
  end
  local spent = 0
  if k[8] == period_id(k[6]) then spent = tonumber(k[7]) end
  local budget = tonumber(k[5])
  if spent >= budget then return {'exhausted', name} end
  if in_flight > 0 and spent + reserved + tonumber(ARGV[4]) > budget then return {'busy', name} end
end
local rpm_level = nil
if k[9] and k[9] ~= '' then
  local cap = tonumber(k[9])
  local l = refill(k[10], k[11], cap, now)
  if l < 1 then return {'rpm', name, string.format('%.17g', (1 - l) * 60 / cap)} end
  rpm_level = l - 1
end
if k[12] and k[12] ~= '' then
  local cap = tonumber(k[12])
  local l = refill(k[13], k[14], cap, now)
  if l < 1 then return {'tpm', name, string.format('%.17g', (1 - l) * 60 / cap)} end
end
if rpm_level then redis.call('HSET', KEYS[1], 'rpm_level', string.format('%.17g', rpm_level), 'rpm_at', ARGV[1]) end
local ticket = '0'  -- a key without a budget holds no reservation
if budgeted then
  ticket = tostring(redis.call('INCR', KEYS[3]))
  redis.call('HSET', KEYS[2], ticket, ARGV[4] .. ':' .. ARGV[5])
end
return {'ok', name, '', ticket}
"""

# KEYS: record, reservations, log. ARGV: now, day id, month id, ticket, cost ('' unknown), tokens, the log's
# oldest id to keep (MINID), then the log's fields
SETTLE = _REFILL + """
redis.call('HDEL', KEYS[2], ARGV[4])
local k = redis.call('HMGET', KEYS[1], 'period', 'spent', 'period_id', 'tpm', 'tpm_level', 'tpm_at')
local now = tonumber(ARGV[1])
if k[1] then
  local pid = period_id(k[1])
  local spent = 0
  if k[3] == pid then spent = tonumber(k[2]) end
  if ARGV[5] ~= '' then spent = spent + tonumber(ARGV[5]) end
  redis.call('HSET', KEYS[1], 'spent', string.format('%.0f', spent), 'period_id', pid, 'last_used', ARGV[1])
  if k[4] and k[4] ~= '' then
    local level = refill(k[5], k[6], tonumber(k[4]), now) - tonumber(ARGV[6])
    redis.call('HSET', KEYS[1], 'tpm_level', string.format('%.17g', level), 'tpm_at', ARGV[1])
  end
end
redis.call('XADD', KEYS[3], 'MINID', ARGV[7], '*', unpack(ARGV, 8))
return 1
"""

FIELDS = ("ts", "name", "model", "input_tokens", "output_tokens", "cost", "latency_ms", "status")


def _key(hashed: str) -> str:
    return f"{PREFIX}key:{hashed}"


def _held(hashed: str) -> str:
    return f"{PREFIX}held:{hashed}"


def _opt(value: str | None, kind: type = int) -> Any:
    return kind(value) if value not in (None, "") else None


def _record(data: dict[str, str]) -> KeyRecord:
    return KeyRecord(name=data["name"], budget=_opt(data.get("budget")), period=data.get("period", "total"),
                     rpm=_opt(data.get("rpm")), tpm=_opt(data.get("tpm")),
                     models=tuple(m for m in data.get("models", "").split("\n") if m),
                     created=float(data.get("created", 0)), expires=_opt(data.get("expires"), float),
                     revoked=_opt(data.get("revoked"), float))


def _fields(entry: SpendEntry) -> list[str]:
    return [f"{entry.ts!r}", entry.name, entry.model, str(entry.input_tokens), str(entry.output_tokens),
            "" if entry.cost is None else str(entry.cost), f"{entry.latency_ms:.1f}", entry.status]


def _keep_from(entry: SpendEntry) -> str:
    """The oldest log id kept beside `entry` (MINID: older ones go as it is added). The ids are the
    server's clock and the entry carries the writer's; SPEND_LOG_KEEP_S dwarfs CLOCK_SLACK_MS."""
    return str(max(0, int((entry.ts - SPEND_LOG_KEEP_S) * 1000)))


def _periods(now: float) -> list[str]:
    return [period_id("day", now), period_id("month", now)]


CLIENT_OPTIONS: dict[str, Any] = dict(decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0,
                                      health_check_interval=30)


def _admit_keys(hashed: str) -> list[str]:
    return [_key(hashed), _held(hashed), TICKETS]


def _admit_args(ask: Ask) -> list[str]:
    return [repr(ask.now), *_periods(ask.now), str(ask.estimate), repr(ask.now + ask.hold_s), "\n".join(ask.models)]


def _admission(reply: list[str]) -> Admission:
    verdict, name = Verdict(reply[0]), (reply[1] if len(reply) > 1 else None)
    if verdict in (Verdict.RPM, Verdict.TPM):
        return Admission(verdict, name, float(reply[2]))
    return Admission(verdict, name, ticket=reply[3] if verdict is Verdict.OK else None)


def _settle_keys(hashed: str) -> list[str]:
    return [_key(hashed), _held(hashed), LOG]


def _settle_args(ticket: str, entry: SpendEntry) -> list[str]:
    return [repr(entry.ts), *_periods(entry.ts), ticket, "" if entry.cost is None else str(entry.cost),
            str(entry.input_tokens + entry.output_tokens), _keep_from(entry),
            *(x for pair in zip(FIELDS, _fields(entry), strict=True) for x in pair)]


class RedisState:
    """The blocking client serves the CLI and the tests; serve admits and settles through an asyncio
    client on its event loop (`admit_async`, `settle_async`): an admission's round trip no longer
    holds the loop, and a settlement runs as a task there instead of on a worker thread, whose
    handing of the GIL back and forth with the loop cost the next request under load."""

    remote = True

    def __init__(self, url: str) -> None:
        import redis

        self.url, self.where = url, mask_url(url)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, **CLIENT_OPTIONS)
        self._admit = self.client.register_script(ADMIT)
        self._settle = self.client.register_script(SETTLE)
        self._call(self.client.ping)
        self._loop: Any = None  # the loop the asyncio client was made on (its connections belong to it)
        self._aclient: Any = None
        self._ascripts: tuple[Any, Any] = (None, None)

    def _unavailable(self, err: BaseException) -> StateUnavailable:
        return StateUnavailable(f"cannot reach the access store at {self.where}: {err}",
                                hint="start redis-server there, or check --state")

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as err:
            raise self._unavailable(err) from None

    def _scripts(self) -> tuple[Any, Any]:
        """The asyncio client's admission and settlement scripts, for the running loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            import redis.asyncio

            self._loop, self._aclient = loop, redis.asyncio.Redis.from_url(self.url, **CLIENT_OPTIONS)
            self._ascripts = (self._aclient.register_script(ADMIT), self._aclient.register_script(SETTLE))
        return self._ascripts

    def create(self, record: KeyRecord, hashed: str) -> None:
        old = self._call(self.client.hget, NAMES, record.name)
        if old is not None and not self._call(self.client.hget, _key(old), "revoked"):
            raise UsageError(f"a key named '{record.name}' exists", hint=f"revoke it first: streamchat access revoke {record.name}")
        mapping = {"name": record.name, "budget": "" if record.budget is None else str(record.budget), "period": record.period,
                   "rpm": "" if record.rpm is None else str(record.rpm), "tpm": "" if record.tpm is None else str(record.tpm),
                   "models": "\n".join(record.models), "created": repr(record.created),
                   "expires": "" if record.expires is None else repr(record.expires), "revoked": ""}
        pipe = self.client.pipeline(transaction=True)
        if old is not None:
            pipe.delete(_key(old), _held(old))
        pipe.hset(_key(hashed), items=[x for pair in mapping.items() for x in pair])
        pipe.hset(NAMES, record.name, hashed)
        self._call(pipe.execute)

    def revoke(self, name: str, now: float) -> None:
        hashed = self._call(self.client.hget, NAMES, name)
        if hashed is None or self._call(self.client.hget, _key(hashed), "revoked"):
            raise UsageError(f"no active key named '{name}'", hint="streamchat access list shows the keys")
        self._call(self.client.hset, _key(hashed), "revoked", repr(now))

    def statuses(self, now: float) -> list[KeyStatus]:
        names: dict[str, str] = self._call(self.client.hgetall, NAMES)
        pipe = self.client.pipeline(transaction=False)
        for name in sorted(names):
            pipe.hgetall(_key(names[name]))
        found = []
        for data in self._call(pipe.execute):
            if not data:
                continue
            record = _record(data)
            spent = int(data.get("spent") or 0) if data.get("period_id") == period_id(record.period, now) else 0
            found.append(KeyStatus(record, spent, _opt(data.get("last_used"), float)))
        return found

    def find(self, hashed: str) -> KeyRecord | None:
        data = self._call(self.client.hgetall, _key(hashed))
        return _record(data) if data else None

    def admit(self, hashed: str, ask: Ask) -> Admission:
        return _admission(self._call(self._admit, keys=_admit_keys(hashed), args=_admit_args(ask)))

    def settle(self, hashed: str, ticket: str, entry: SpendEntry) -> None:
        self._call(self._settle, keys=_settle_keys(hashed), args=_settle_args(ticket, entry))

    async def admit_async(self, hashed: str, ask: Ask) -> Admission:
        script = self._scripts()[0]
        try:
            reply = await script(keys=_admit_keys(hashed), args=_admit_args(ask))
        except self._errors as err:
            raise self._unavailable(err) from None
        return _admission(reply)

    async def settle_async(self, hashed: str, ticket: str, entry: SpendEntry) -> None:
        script = self._scripts()[1]
        try:
            await script(keys=_settle_keys(hashed), args=_settle_args(ticket, entry))
        except self._errors as err:
            raise self._unavailable(err) from None

    def cool(self, route: str, deployment: str, until: float) -> None:
        self._call(self.client.hset, COOLING + route, deployment, repr(until))

    def cooling(self, route: str) -> dict[str, float]:
        return {name: float(until) for name, until in self._call(self.client.hgetall, COOLING + route).items()}

    def log(self, entry: SpendEntry) -> None:
        self._call(self.client.xadd, LOG, dict(zip(FIELDS, _fields(entry), strict=True)), minid=_keep_from(entry),
                   approximate=False)

    def entries(self, since: float) -> list[SpendEntry]:
        start = max(0, int(since * 1000) - CLOCK_SLACK_MS)
        found = []
        for _id, f in self._call(self.client.xrange, LOG, min=f"{start}-0", max="+"):
            ts = float(f["ts"])
            if ts >= since:
                found.append(SpendEntry(ts, f["name"], f["model"], int(f["input_tokens"]), int(f["output_tokens"]),
                                        _opt(f["cost"]), float(f["latency_ms"]), f["status"]))
        return found

    def close(self) -> None:
        self.client.close()
