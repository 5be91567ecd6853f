"""Tools of the echo plugin (`--tools echo`): each public function with type hints is one."""

from __future__ import annotations


def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


def count_words(text: str, minimum_length: int = 1) -> int:
    """How many words of at least `minimum_length` characters the text holds."""
    return sum(len(word) >= minimum_length for word in text.split())
