"""Normalized stream events, the outcome of a turn, and the contracts of what shows them.

Every provider adapter yields events; every sink (terminal, pipe, NDJSON, HTTP) consumes
them and receives one frozen `TurnResult` at the end. A front end that shows the user more
than the answer (notices, a busy state) is a `FrontEnd` to the chat service.
"""

from __future__ import annotations

import enum
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Union

if TYPE_CHECKING:
    from streamchat.errors import StreamchatError

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """Something the model must see, not read: an image or a PDF, with its type found from its bytes."""

    name: str
    mime: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.data).hexdigest()

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")

    def base64(self) -> str:
        import base64

        return base64.b64encode(self.data).decode("ascii")


# ("auto" | "none" | "required", None), or ("tool", name) to make the model call that one
ToolChoice = tuple[str, str | None]
TOOL_NAME_CHARS = "A-Za-z0-9_-"  # what both APIs accept in a tool's name, at most 64 of them


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and a JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}}, hash=False)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete call the model asked for; `arguments` is the JSON text as streamed."""

    id: str
    name: str
    arguments: str = "{}"
    index: int = 0

    def parsed(self) -> dict[str, Any]:
        """The arguments as an object ({} when empty); ValueError when they are not a JSON object."""
        import json

        value = json.loads(self.arguments) if self.arguments.strip() else {}
        if not isinstance(value, dict):
            raise ValueError("the arguments are not a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the context. An assistant message may carry the tool calls it made; a
    `tool` message is the result of one call (`tool_call_id`)."""

    role: Role
    content: str
    attachments: tuple[Attachment, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False  # a tool result that reports a failure or a refusal


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer: `pieces` deltas as the provider sent them (several when serve
    joins those of one read), which count the answer's tokens when the provider reports none."""

    text: str
    pieces: int = 1


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of reasoning ("thinking") text, shown apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None  # all input, cached included
    output_tokens: int | None = None
    cached_tokens: int | None = None  # of the input, read from the provider's prompt cache
    cache_write_tokens: int | None = None  # of the input, written to it (Anthropic; priced above input)


@dataclass(frozen=True, slots=True)
class Done:
    """The provider finished the answer (the stream was complete, not cut)."""

    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The model began a call (`index` orders calls within one answer; the streams interleave them)."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a call's JSON arguments."""

    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What running (or refusing) a call produced; fed to sinks between the steps of a turn."""

    call: ToolCall
    content: str
    status: Literal["ok", "error", "refused"] = "ok"
    ms: float = 0.0


Event = Union[TextDelta, ReasoningDelta, Usage, Done, ToolCallStart, ToolCallDelta, ToolCall, ToolResult]


MIN_RATE_MS = 100.0  # a rate over less generation time than this is noise, not a speed


@dataclass(frozen=True, slots=True)
class Stats:
    """Timing and token counts of one turn."""

    ttft_ms: float | None = None
    total_ms: float = 0.0
    tokens: int = 0
    input_tokens: int | None = None
    cost_usd: float | None = None  # None: unknown model or price
    cached_tokens: int | None = None  # of input_tokens, read from the prompt cache
    cache_write_tokens: int | None = None  # of input_tokens, written to it

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens a second from the first token to the end; None without a time to measure it over
        (an answer that arrives in one burst was `56375.0 tok/s` over ~0 ms)."""
        gen_ms = self.total_ms - (self.ttft_ms or 0.0)
        if not self.tokens or gen_ms < MIN_RATE_MS:
            return None
        return self.tokens / (gen_ms / 1000.0)

    def as_dict(self) -> dict[str, float | int | None]:
        tps = self.tokens_per_s
        return {
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
            "total_ms": round(self.total_ms, 1),
            "tokens": self.tokens,
            "input_tokens": self.input_tokens,
            "tokens_per_s": None if tps is None else round(tps, 1),
            "cost_usd": self.cost_usd,
            "cache_read_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }

    def cache_summary(self) -> str:
        """` · cache 1.2k read, 300 written`, or "" when the provider reported no cache use."""
        from streamchat.cost import short

        parts = [f"{short(n)} {what}" for n, what in ((self.cached_tokens, "read"), (self.cache_write_tokens, "written"))
                 if n]
        return f" · cache {', '.join(parts)}" if parts else ""

    def summary(self) -> str:
        tps = self.tokens_per_s
        ttft = "-" if self.ttft_ms is None else f"{self.ttft_ms:.0f} ms"
        rate = "- tok/s" if tps is None else f"{tps:.1f} tok/s"
        from streamchat.cost import money

        return (f"TTFT {ttft} · {self.tokens} tokens · {rate} · total {self.total_ms / 1000:.2f} s"
                f"{self.cache_summary()} · cost {money(self.cost_usd)}")


CUT_OFF = ("length", "max_tokens")  # OpenAI's and Anthropic's words for "stopped at the token limit"


class Outcome(enum.Enum):
    """How a turn ended. Exit codes and HTTP statuses are derived from this at the edges."""

    OK = "ok"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, SIGHUP
    CANCELLED = "cancelled"  # a cancel token (serve: client gone or {"type": "cancel"})
    OUTPUT_CLOSED = "output_closed"  # stdout closed by the reader
    FAILED = "failed"  # a provider or network fault


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one turn produced, complete or not: the partial text is never dropped."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    stats: Stats = field(default_factory=Stats)
    outcome: Outcome = Outcome.OK
    error: StreamchatError | None = None
    steps: tuple[Message, ...] = ()  # tool exchanges before `text`: assistant calls, then their results
    tool_calls: tuple[ToolCall, ...] = ()  # calls the last step asked for and nobody ran (serve's client tools)
    conversation_id: int | None = None  # where the log saved it (None: not saved)
    turn_id: int | None = None  # the answer's id in the log

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def cut_off(self) -> bool:
        """The answer stopped at the token limit: complete as a stream, not as an answer."""
        return self.ok and self.finish_reason in CUT_OFF

    @property
    def partial(self) -> bool:
        """Some text was streamed but the answer did not complete."""
        return bool(self.text) and not self.ok

    @property
    def state(self) -> str:
        """The log's word for it: ok, interrupted (any stop by the user or reader) or error."""
        if self.outcome is Outcome.OK:
            return "ok"
        return "error" if self.outcome is Outcome.FAILED else "interrupted"

    @property
    def message(self) -> str:
        """One line saying why the turn did not complete ("" when it did)."""
        if self.error is not None:
            return str(self.error)
        return {Outcome.OK: "", Outcome.INTERRUPTED: "interrupted", Outcome.CANCELLED: "cancelled",
                Outcome.OUTPUT_CLOSED: "output closed", Outcome.FAILED: "failed"}[self.outcome]


class Sink(Protocol):
    """Where a turn's events go: terminal, pipe, NDJSON, HTTP."""

    def begin(self) -> None:
        """A request is about to be sent: at the turn's start, and again before each tool step."""
        ...

    def feed(self, event: Event) -> None: ...

    def end(self, result: TurnResult) -> None: ...


class NullSink:
    """Shows nothing: a turn only its result is wanted from (a summary, -x with stderr not a terminal)."""

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        pass

    def end(self, result: TurnResult) -> None:
        pass


class FrontEnd(Protocol):
    """What the chat service needs from the front end beside a turn's sink: a line for the user
    (a retry, a PDF sent as text) and a busy state around work that keeps them waiting (loading a
    model, compacting). The terminal's `ui.UI` is one; the Python API and serve pass none."""

    def notice(self, message: str) -> None: ...

    def spinner(self, label: str) -> AbstractContextManager[object]:
        """Shown while the block runs."""
        ...

    def warm_up(self) -> None:
        """Load what the front end draws answers with, in the warm-up thread (the REPL's renderer)."""
        ...
