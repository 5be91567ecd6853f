"""Compaction: a conversation longer than the model's window goes on, its older turns sent as the
model's own summary of them.

When the next request would not fit (with room kept for the answer), the oldest turns are
summarized by the model into one paragraph of the system prompt and the recent turns are sent
whole. The summary is logged, so later turns reuse it, and extended (the old summary plus the turns
that fall out next) when the conversation outgrows it again. The log keeps every turn.

The selection (`split_point`, `clip`, the budgets) is pure; `compact` runs the summary request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamchat.conversation import Summary, Turn
from streamchat.cost import SMALLEST_WINDOW, estimate_tokens, short, window_from_database
from streamchat.events import Message, Outcome

if TYPE_CHECKING:
    from streamchat.service import ChatSession

MAX_MARGIN = 4096  # tokens kept for the answer when --max-tokens does not say: a quarter of the window, at most this
MAX_SUMMARY = 2048  # tokens the summary may take: a sixth of the window, at most this
UNKNOWN_WINDOW = 8192  # /compact on a model whose window is unknown: budgets as for this one
HEADING = "Summary of the earlier part of this conversation (those turns are not repeated below):"
INSTRUCTIONS = (
    "You condense a conversation between a user and an assistant so that the assistant can continue it without "
    "the original turns. Keep the user's goals and preferences, facts, decisions, names, numbers, file names, "
    "code identifiers and open questions; drop pleasantries. If an earlier summary is given, merge it with the "
    "new turns. Write in the conversation's language, at most {words} words, and only the summary.")


# -- the pure part ---------------------------------------------------------------------------
def answer_margin(window: int, max_tokens: int | None) -> int:
    """Tokens left free for the answer: --max-tokens (at most half the window), else a quarter."""
    return min(max_tokens, window // 2) if max_tokens else min(window // 4, MAX_MARGIN)


def summary_budget(window: int) -> int:
    """Tokens the summary may take."""
    return max(64, min(window // 6, MAX_SUMMARY))


def turn_tokens(turn: Turn) -> int:
    """What a turn adds to a request, estimated (0 for a turn that is not sent: no text)."""
    if not turn.counts:
        return 0
    return (estimate_tokens(turn.prompt) + estimate_tokens(turn.result.text)
            + sum(estimate_tokens(m.content) + sum(estimate_tokens(c.arguments) for c in m.tool_calls)
                  for m in turn.result.steps))


def split_point(costs: Sequence[int], covered: int, room: int) -> int:
    """How many of the oldest turns the summary should stand in for: at least `covered` (those it
    covers already), and enough that the others hold at most `room` tokens (all of them when even
    the newest alone does not fit)."""
    k = max(0, min(covered, len(costs)))
    rest = sum(costs[k:])
    while k < len(costs) and rest > room:
        rest -= costs[k]
        k += 1
    return k


def clip(texts: Sequence[str], limit: int) -> list[str]:
    """The texts cut to `limit` characters in all: the short ones whole, the long ones sharing what
    is left equally, each keeping its start (a cut is marked with "…")."""
    if sum(len(t) for t in texts) <= limit:
        return list(texts)
    caps: dict[int, int] = {}
    left, remaining = max(limit, 0), len(texts)
    for i in sorted(range(len(texts)), key=lambda i: len(texts[i])):
        caps[i] = min(len(texts[i]), left // remaining)
        left -= caps[i]
        remaining -= 1
    return [t if caps[i] >= len(t) else t[: max(caps[i] - 1, 0)] + "…" for i, t in enumerate(texts)]


def system_with(system: str | None, summary: Summary | None) -> str | None:
    """The system prompt with the summary as its last paragraph: one message, whatever the API."""
    if summary is None:
        return system
    block = f"{HEADING}\n\n{summary.text}"
    return f"{system}\n\n{block}" if system else block


def summary_messages(previous: Summary | None, turns: Sequence[Turn], budget: int, room: int) -> tuple[Message, ...]:
    """The summary request: instructions, then the earlier summary and the turns as one transcript,
    cut to fit `room` tokens."""
    labelled = [(label, text) for t in turns if t.counts
                for label, text in (("User", t.prompt), ("Assistant", t.result.text))]
    earlier = f"<earlier-summary>\n{previous.text}\n</earlier-summary>\n\n" if previous is not None else ""
    instructions = INSTRUCTIONS.format(words=budget * 3 // 4)
    chars = room * 4 - len(instructions) - len(earlier) - 16 * len(labelled) - 64
    texts = clip([text for _label, text in labelled], chars)
    transcript = "\n\n".join(f"{label}: {text}" for (label, _text), text in zip(labelled, texts, strict=True))
    return (Message("system", instructions), Message("user", f"{earlier}<conversation>\n{transcript}\n</conversation>"))


def request_tokens(system: str | None, messages: Sequence[Message], prompt: str = "") -> int:
    """The estimate of a request's size."""
    return (estimate_tokens(system or "") + sum(estimate_tokens(m.content) for m in messages)
            + (estimate_tokens(prompt) if prompt else 0))


# -- running it ------------------------------------------------------------------------------
def plan(session: ChatSession, prompt: str) -> int:
    """How many turns the summary should cover so the request for `prompt` fits the window with
    room for the answer: its current count when it fits already (or the window is unknown)."""
    conv = session.conversation
    current = conv.current_summary
    covered = current.turns if current is not None else 0
    if len(conv.turns) <= covered:
        return covered
    guess = request_tokens(session.system_prompt(current), conv.history(current), prompt)
    used = max(guess, session._estimate(prompt))
    provider = session.target.config
    if used + answer_margin(SMALLEST_WINDOW, session.options.max_tokens) <= SMALLEST_WINDOW \
            and window_from_database(provider, session.target.model):
        return covered  # fits any model: the price database that holds the windows is not loaded
    window = session._window()
    if window is None:
        return covered
    budget = window - answer_margin(window, session.options.max_tokens)
    if used <= budget:
        return covered
    # what stays besides the recent turns: the system prompt, the summary to be, the question
    fixed = request_tokens(conv.system, [], prompt) + summary_budget(window)
    scale = max(1.0, used / max(guess, 1))  # the provider counts more tokens than the estimate: trust it
    costs = [round(turn_tokens(t) * scale) for t in conv.turns]
    # the recent turns get half the room, so the next few turns fit before compacting again
    return split_point(costs, covered, (budget - fixed) // 2)


def compact(session: ChatSession, prompt: str = "", *, everything: bool = False, spinner: bool = True,
            window: int | None = None) -> Summary | None:
    """Summarize the older turns (`everything`: all of them) into the conversation's summary and
    say so in one line; None when there was nothing to do or the model could not summarize
    (said too: the turns are then sent whole). A Ctrl-C while it runs is KeyboardInterrupt.
    `window` overrides the model's (the provider refused a request the estimate said would fit)."""
    from streamchat.events import NullSink
    from streamchat.providers.base import ChatRequest
    from streamchat.session import run_turn

    conv = session.conversation
    current = conv.current_summary
    covered = current.turns if current is not None else 0
    upto = len(conv.turns) if everything else plan(session, prompt)
    fresh = [t for t in conv.turns[covered:upto] if t.counts]
    if not fresh:
        return None
    window = window or session._window() or UNKNOWN_WINDOW
    budget = summary_budget(window)
    messages = summary_messages(current, fresh, budget, window - budget - 64)
    request = ChatRequest(model=session.target.model, messages=messages, max_tokens=budget,
                          timeout=session.options.timeout)
    ui = session.ui
    with ui.spinner("compacting") if ui is not None and spinner else contextlib.nullcontext():
        result = run_turn(session.target.provider, request, NullSink(), retry=session.options.retry)
    if result.outcome is Outcome.INTERRUPTED:
        raise KeyboardInterrupt
    text = result.text.strip()[: budget * 4 + 200]  # a model that ignored max_tokens: the summary stays in bounds
    if not result.ok or not text:
        why = result.message if not result.ok else "the summary came back empty"
        session._notice(f"could not compact the conversation ({why}); it is sent whole")
        return None
    before = (current.saved + estimate_tokens(current.text)) if current is not None else 0
    before += sum(turn_tokens(t) for t in fresh)
    last = conv.turns[upto - 1]
    summary = Summary(text, upto, last.id, max(0, before - estimate_tokens(text)))
    conv.summary = summary
    session.compacting = True
    session._notice(f"compacted {upto} earlier turn{'s' if upto != 1 else ''} into a summary:"
                   f" ~{short(summary.saved)} tokens saved")
    return summary
