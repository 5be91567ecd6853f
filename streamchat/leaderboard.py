"""Votes between models' answers to one question, and the leaderboard they add up to.

Pure data and arithmetic: serve's page casts the votes, the log stores them, `history votes` prints
the standings. One vote is one row per model in it: the winner gets a win and every other model a
loss; a tie or "both bad" is a tie for each (as Chatbot Arena counts "both bad"), the latter also
counted on its own so a model that is often bad shows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

OUTCOMES = ("win", "tie", "bad")
MIN_MODELS, MAX_MODELS = 2, 3


@dataclass(frozen=True)
class Vote:
    """The user's verdict on one question answered by 2–3 models (`models` in the order shown)."""

    models: tuple[str, ...]
    outcome: str  # "win" (then `winner` is one of `models`), "tie" or "bad" (both/all bad)
    winner: str | None = None
    blind: bool = False
    prompt: str = ""
    created_at: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        if not MIN_MODELS <= len(self.models) <= MAX_MODELS:
            raise ValueError(f"a vote compares {MIN_MODELS} or {MAX_MODELS} models, not {len(self.models)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError("a vote compares different models: one is named twice")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")
        if (self.outcome == "win") != (self.winner is not None):
            raise ValueError("a winner goes with outcome 'win', and only with it")
        if self.winner is not None and self.winner not in self.models:
            raise ValueError("the winner must be one of the models compared")


@dataclass
class Standing:
    """One model's record over the votes it took part in."""

    model: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    both_bad: int = 0  # of the ties, those voted "both bad"

    @property
    def votes(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        """Wins over the votes the model took part in (ties count as votes not won)."""
        return self.wins / self.votes if self.votes else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"model": self.model, "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "both_bad": self.both_bad, "votes": self.votes, "win_rate": round(self.win_rate, 4)}


def leaderboard(votes: Iterable[Vote]) -> list[Standing]:
    """Every model voted on, best first: by win rate, then more wins, fewer losses, more votes, name."""
    table: dict[str, Standing] = {}
    for vote in votes:
        for model in vote.models:
            standing = table.setdefault(model, Standing(model))
            if vote.outcome != "win":
                standing.ties += 1
                standing.both_bad += vote.outcome == "bad"
            elif model == vote.winner:
                standing.wins += 1
            else:
                standing.losses += 1
    return sorted(table.values(), key=lambda s: (-s.win_rate, -s.wins, s.losses, -s.votes, s.model))
