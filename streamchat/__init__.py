"""streamchat: a terminal chat client that streams LLM answers token by token."""

from streamchat._version import __version__
from streamchat.events import Done, Event, Message, ReasoningDelta, TextDelta, Usage

__all__ = [
    "Done",
    "Event",
    "Message",
    "ReasoningDelta",
    "TextDelta",
    "Usage",
    "__version__",
]
