"""The one conversation model: system prompt, the turns on the active path, and how they become context.

The REPL, the one-shot command, serve and the log all read and write this; `store.py`
persists it (each turn linked to its parent, so a regenerated answer becomes a sibling
branch instead of a second copy of the question).
"""

from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from streamchat.events import Attachment, Message, ToolCall, TurnResult


def shown_json(value: Any) -> str:
    """`value` as JSON for a terminal line. JSON escapes only C0 controls: DEL, C1 controls, format
    characters (bidi overrides, zero-width) and line separators are escaped too, so an argument
    can neither draw a line of its own nor reorder what is shown."""
    text = json.dumps(value, ensure_ascii=False)
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(_escaped(c) for c in text)


def _escaped(c: str) -> str:
    if c < "\x7f" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return c
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def shown_key(key: str) -> str:
    """An argument's name: bare when it is a plain identifier, else JSON-quoted (a newline in a key
    must not start a line)."""
    return key if key.isascii() and key.isidentifier() else shown_json(key)


def call_line(call: ToolCall, limit: int | None = 120) -> str:
    """`name(key="value", …)` for a call, shortened to `limit` characters (None: never)."""
    try:
        args = call.parsed()
        text = ", ".join(f"{shown_key(k)}={shown_json(v)}" for k, v in args.items())
    except ValueError:
        text = shown_json(call.arguments)[1:-1]
    line = f"{call.name}({text})"
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…)"


@dataclass(frozen=True)
class Turn:
    """A question and its answer (complete, partial or failed)."""

    prompt: str
    result: TurnResult
    id: int | None = None  # the log's id of the answer row; the next turn's parent
    model: str | None = None  # "provider:model" that answered
    attachments: tuple[Attachment, ...] = ()  # images and PDFs sent with the question

    @property
    def counts(self) -> bool:
        """A turn that produced no text is kept in the log but is not context and not counted."""
        return bool(self.result.text)


@dataclass(frozen=True)
class Summary:
    """The model's summary of the first `turns` turns, sent in their place (compaction); the log
    keeps the turns themselves."""

    text: str
    turns: int  # how many turns of the active path it stands in for
    through_id: int | None = None  # the log's id of the last answer it covers (None: not logged)
    saved: int = 0  # tokens it saves, estimated
    stored: bool = False  # already in the log


@dataclass
class Conversation:
    id: int | None = None  # the log's id, once saved
    system: str | None = None
    model: str | None = None  # "provider:model" of the last turn
    turns: list[Turn] = field(default_factory=list)
    seed: tuple[Message, ...] = ()  # earlier messages given as a whole (serve's request history)
    created_at: float = field(default_factory=time.time)
    forked_from: int | None = None  # the conversation this one was forked from (its turns are shared)
    name: str | None = None  # its session name (`--session NAME`), unique in the log
    summary: Summary | None = None  # the latest compaction; in effect while `current_summary` says so
    replacing: int | None = None  # the answer /edit last took off the path: the question it asks is its edit

    @property
    def turn_count(self) -> int:
        return sum(1 for t in self.turns if t.counts)

    @property
    def tokens(self) -> int:
        return sum(t.result.stats.tokens for t in self.turns)

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def parent_id(self) -> int | None:
        """The answer a new turn follows: the last turn that counts (a failed one is a dead end)."""
        return next((t.id for t in reversed(self.turns) if t.counts), None)

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        self.model = turn.model or self.model

    def drop_last(self) -> Turn | None:
        """For /retry: take the last turn off the active path (the log keeps it as a branch)."""
        return self.turns.pop() if self.turns else None

    def edit_last(self) -> Turn | None:
        """For /edit last: take the last turn off the active path; the next question logged is its
        edit, so the log keeps both exchanges as alternatives of one question."""
        turn = self.drop_last()
        self.replacing = turn.id if turn is not None else None
        return turn

    @property
    def current_summary(self) -> Summary | None:
        """The summary, when the turns it stands in for are still the first ones (an /undo, /alt or
        /retry past its end makes it stale: then the turns are sent whole until it is redone)."""
        s = self.summary
        if s is None or not 0 < s.turns <= len(self.turns):
            return None
        return s if s.through_id is None or self.turns[s.turns - 1].id == s.through_id else None

    def history(self, summary: Summary | None = None) -> list[Message]:
        """The context sent before a new question: the seed, then every turn that produced text
        (after those `summary` stands in for: the caller sends it instead).

        A failed turn with no text is left out: an unanswered question would make two user
        messages in a row, which some APIs refuse. A partial answer is kept.
        """
        messages = list(self.seed)
        for turn in self.turns[summary.turns if summary is not None else 0:]:
            if turn.counts:
                messages += [Message("user", turn.prompt, turn.attachments), *turn.result.steps,
                             Message("assistant", turn.result.text)]
        return messages

    def transcript(self, title: str, alternatives: dict[int, list[Turn]] | None = None,
                   others: dict[int, list[Turn]] | None = None) -> str:
        """The conversation as Markdown (shared by /save, `history show` and `history export`).
        `alternatives`: every answer logged for a turn's question (a race's, /retry's, /edit last's), by
        the turn's id; each is shown with its model and stats, the one the conversation continues marked.
        `others`: the other questions asked at the same point (one that failed before it, one another
        process asked at once), by the turn's id; each is shown as its own exchange where it was asked."""
        parts = [f"# {title}\n"]
        if self.forked_from is not None:
            parts.append(f"_Forked from conversation {self.forked_from}._\n")
        if self.system:
            parts.append(f"**System:** {self.system}\n")
        for m in self.seed:
            parts.append(f"## {m.role.capitalize()}\n\n{m.content}\n")
        summary = self.current_summary
        for number, turn in enumerate(self.turns, 1):
            answers = (alternatives or {}).get(turn.id or 0, [])
            first = min((t.id or 0 for t in answers), default=turn.id or 0)
            asides = (others or {}).get(turn.id or 0, [])
            parts += [part for t in asides if (t.id or 0) < first for part in _aside(t)]
            parts.append(_question(turn))
            if len(answers) > 1:
                for n, answer in enumerate(answers, 1):
                    continued = " · continued" if answer.id == turn.id else ""
                    parts += _answer(answer, f"Assistant {n} of {len(answers)}: {answer.model or '?'}{continued}",
                                     stats=True, asked=answer.prompt if answer.prompt != turn.prompt else None)
            else:
                parts += _answer(turn, "Assistant")
            parts += [part for t in asides if (t.id or 0) > first for part in _aside(t)]
            if summary is not None and number == summary.turns:
                quoted = "\n".join(f"> {line}" if line else ">" for line in summary.text.splitlines())
                parts.append(f"---\n\n_Compacted: the model is sent this summary in place of turns 1–{number} above"
                             f" (about {summary.saved} tokens saved)._\n\n{quoted}\n\n---\n")
        return "\n".join(parts)


def _question(turn: Turn) -> str:
    attached = "".join(f"\n_[attached: {a.name}, {a.mime}, {len(a.data)} bytes]_\n" for a in turn.attachments)
    return f"## User\n\n{turn.prompt}\n{attached}"


def _aside(turn: Turn) -> list[str]:
    """A question asked at a point the conversation did not go on from (it failed, or another
    question at the same point was continued): its own exchange, where it was asked."""
    note = [] if not turn.result.text else ["_The conversation did not continue from this answer._\n"]
    return [_question(turn), *_answer(turn, f"Assistant: {turn.model or '?'}", stats=True), *note]


def _answer(turn: Turn, heading: str, *, stats: bool = False, asked: str | None = None) -> list[str]:
    """A transcript's answer: its heading (marked when it did not complete), the tool steps before
    it (their text, calls and results), its text; `stats`: its timing, tokens and cost below the heading;
    `asked`: the question it answered, when not the one shown above it (/edit last's)."""
    mark = "" if turn.result.ok else f" _[{turn.result.message}]_"
    parts = [f"## {heading}{mark}\n"]
    if stats:
        parts.append(f"_{turn.result.stats.summary()}_\n")
    if asked is not None:
        quoted = "\n".join(f"> {line}" if line else ">" for line in asked.splitlines())
        parts.append(f"_To the question asked before /edit last:_\n\n{quoted}\n")
    for m in turn.result.steps:
        if m.role == "assistant" and m.content:
            parts.append(f"{m.content}\n")
        parts += [f"_→ {call_line(c)}_\n" for c in m.tool_calls]
        if m.role == "tool":
            parts.append(f"_← {len(m.content)} characters{' (error)' if m.is_error else ''}_\n")
    parts.append(f"{turn.result.text}\n")
    return parts
