"""A conversation in memory: the turns sent as context, and how a finished turn changes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamchat.events import Message, TurnResult


@dataclass
class TurnLog:
    prompt: str
    result: TurnResult


@dataclass
class ChatState:
    """What the REPL carries between turns."""

    messages: list[Message] = field(default_factory=list)
    system: str | None = None
    turns: int = 0
    tokens: int = 0
    last: TurnLog | None = None

    def add_turn(self, prompt: str, result: TurnResult) -> None:
        """Keep the question and whatever was answered, even partly (so the next turn has it).

        A turn that failed before any text is left out of the context: an unanswered
        question would make two user messages in a row, which some APIs refuse.
        """
        self.last = TurnLog(prompt, result)
        self.turns += 1
        self.tokens += result.stats.tokens
        if result.text:
            self.messages += [Message("user", prompt), Message("assistant", result.text)]

    def drop_last_turn(self) -> str | None:
        """For /retry: remove the last answer and return its question."""
        if self.last is None:
            return None
        prompt = self.last.prompt
        if len(self.messages) >= 2 and self.messages[-2] == Message("user", prompt):
            del self.messages[-2:]
        self.last = None
        return prompt

    def transcript(self, model: str) -> str:
        parts = [f"# streamchat conversation ({model})\n"]
        if self.system:
            parts.append(f"**System:** {self.system}\n")
        for m in self.messages:
            parts.append(f"## {m.role.capitalize()}\n\n{m.content}\n")
        return "\n".join(parts)
