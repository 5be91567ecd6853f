"""The `-f echo:TEXT` source: TEXT itself, as a source named `echo:TEXT`."""

from __future__ import annotations


def read_source(rest: str) -> str:
    return rest
