"""Normalized stream events: every provider adapter yields these and every sink consumes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of reasoning ("thinking") text, shown apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The provider finished the answer (the stream was complete, not cut)."""

    finish_reason: str | None = None


Event = Union[TextDelta, ReasoningDelta, Usage, Done]


@dataclass(slots=True)
class Stats:
    """Timing of one turn; filled in by the turn runner."""

    ttft_ms: float | None = None
    total_ms: float = 0.0
    tokens: int = 0
    input_tokens: int | None = None

    @property
    def tokens_per_s(self) -> float | None:
        gen_ms = self.total_ms - (self.ttft_ms or 0.0)
        if not self.tokens or gen_ms <= 0:
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
        }

    def summary(self) -> str:
        tps = self.tokens_per_s
        ttft = "-" if self.ttft_ms is None else f"{self.ttft_ms:.0f} ms"
        rate = "-" if tps is None else f"{tps:.1f} tok/s"
        return f"TTFT {ttft} · {self.tokens} tokens · {rate} · total {self.total_ms / 1000:.2f} s"


@dataclass(slots=True)
class TurnResult:
    """What one turn produced, complete or not: the partial text is never dropped."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    stats: Stats = field(default_factory=Stats)
    state: Literal["ok", "interrupted", "error"] = "ok"
    error: str | None = None
    exit_code: int = 0
    exception: BaseException | None = None
