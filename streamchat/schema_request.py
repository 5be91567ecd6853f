"""The "answer as JSON matching this schema" part of a request (#30), as one frozen value.

A front end (`--schema`, a role, serve's `response_format`) builds a `ResponseSchema` and passes
it as `Overrides(schema=…)`; `ChatSession.request()` copies it onto `ChatRequest.schema`, and each
provider asks for JSON in its own strongest way (OpenAI `response_format` json_schema, Anthropic a
forced tool, a compatible server either, the embedded model a grammar). The providers stream the
JSON as ordinary `TextDelta`s, so sinks, the log and serve need nothing new; validating the answer
(and repairing it) is the front end's job.

    ResponseSchema({"type": "object", "properties": {"city": {"type": "string"}}}, name="city")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from streamchat.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what OpenAI's json_schema.name and a tool's name both allow
DEFAULT_NAME = "answer"


@dataclass(frozen=True)
class ResponseSchema:
    """A JSON Schema the answer must match.

    `schema`: the JSON Schema itself (a dict, as parsed from JSON; never mutated).
    `name`: what the provider calls it (OpenAI's json_schema name, Anthropic's tool name):
        1–64 letters, digits, `_` or `-`; `named()` derives one from any text.
    `strict`: OpenAI strict mode — True asks for it, False never, None decides from the schema
        (strict when the schema allows it, see providers/_schema.py).
    `description`: optional words for the model about what the JSON is for.
    """

    schema: dict[str, Any] = field(hash=False)
    name: str = DEFAULT_NAME
    strict: bool | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.schema, dict):
            raise UsageError("a response schema must be a JSON object", hint='e.g. {"type": "object", ...}')
        if not NAME.fullmatch(self.name):
            raise UsageError(f"schema name {self.name!r} is not 1–64 letters, digits, _ or -",
                             hint="rename it, or build it with ResponseSchema.named()")

    @classmethod
    def named(cls, schema: dict[str, Any], name: str | None = None, *, strict: bool | None = None,
              description: str | None = None) -> ResponseSchema:
        """A ResponseSchema whose name comes from `name`, else the schema's `title` (a pydantic
        model's class name), else "answer"; characters a provider refuses become `_`."""
        raw = name or (schema.get("title") if isinstance(schema, dict) else None) or DEFAULT_NAME
        cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", str(raw))[:64] or DEFAULT_NAME
        return cls(schema, cleaned, strict, description)
