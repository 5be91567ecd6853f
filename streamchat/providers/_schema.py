"""How each wire format asks for an answer matching a JSON Schema (#30), as request-body pieces.

Pure functions over the schema dict: whether OpenAI's strict mode can take it (`strict_problem`),
the schema closed to extra properties (`closed`), and the body parts for OpenAI `response_format`,
a forced function tool (OpenAI-compatible servers without `response_format`) and Anthropic's forced
tool. The wire parsers turn the forced tool's argument stream back into answer text (_wire.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from streamchat.errors import BadRequestError, StreamchatError, UsageError
from streamchat.schema_request import ResponseSchema

# Keywords OpenAI's strict mode refuses ("Invalid schema for response_format …").
STRICT_UNSUPPORTED = ("allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
                      "patternProperties", "default")
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def subschemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema nested in `schema`, itself first, each with its JSON Pointer (for messages)."""
    yield path or "/", schema
    for key in _ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            yield from subschemas(value, f"{path}/{key}")
        elif key == "items" and isinstance(value, list):  # draft-4 tuple form
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from subschemas(item, f"{path}/items/{i}")
    for key in _MANY:
        for i, item in enumerate(schema.get(key) or ()):
            if isinstance(item, dict):
                yield from subschemas(item, f"{path}/{key}/{i}")
    for key in _NAMED:
        named = schema.get(key)
        if isinstance(named, dict):
            for name, item in named.items():
                if isinstance(item, dict):
                    yield from subschemas(item, f"{path}/{key}/{name}")


def is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or (kind is None and "properties" in schema)


def strict_problem(schema: dict[str, Any]) -> str | None:
    """The first rule of OpenAI's strict mode that `schema` breaks, in words that say how to relax
    it, or None when strict mode can take it as it is."""
    if not is_object(schema) or "anyOf" in schema:
        return "strict mode needs an object at the schema's root"
    for path, sub in subschemas(schema):
        for key in STRICT_UNSUPPORTED:
            if key in sub:
                return f"strict mode does not allow '{key}' (at {path})"
        if not is_object(sub):
            continue
        if sub.get("additionalProperties") is not False:
            return f"strict mode needs \"additionalProperties\": false on every object (at {path})"
        missing = [name for name in sub.get("properties") or {} if name not in (sub.get("required") or ())]
        if missing:
            return f"strict mode needs every property required; '{missing[0]}' is not (at {path})"
    return None


def strict_compatible(schema: dict[str, Any]) -> bool:
    """Whether OpenAI's strict mode accepts `schema` unchanged."""
    return strict_problem(schema) is None


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` where every object that names its properties, and does not say otherwise,
    forbids properties it does not name. Every instance of the result is an instance of `schema`, so an answer to it still
    validates against what the caller gave; `schema` itself is not changed."""
    out = dict(schema)
    for key in _ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            out[key] = closed(value)
        elif key == "items" and isinstance(value, list):
            out[key] = [closed(item) if isinstance(item, dict) else item for item in value]
    for key in _MANY:  # not allOf's members: each closed to its own properties, together they match nothing
        if key != "allOf" and isinstance(schema.get(key), list):
            out[key] = [closed(item) if isinstance(item, dict) else item for item in schema[key]]
    for key in _NAMED:
        if isinstance(schema.get(key), dict):
            out[key] = {name: closed(item) if isinstance(item, dict) else item for name, item in schema[key].items()}
    # only objects that name their properties: a bare {"type": "object"} is "any object", not "{}";
    # a composed one's parts name the properties
    open_keys = ("additionalProperties", "patternProperties", "allOf", "anyOf", "oneOf", "$ref")
    if is_object(schema) and "properties" in schema and not any(key in schema for key in open_keys):
        out["additionalProperties"] = False
    return out


def openai_strict(wanted: ResponseSchema) -> tuple[dict[str, Any], bool]:
    """(the schema to send, strict or not). `strict` None: strict when the schema closed to extra
    properties allows it (the answer then still matches the schema as given), else not; True: the
    closed form, refused here in one line when strict mode cannot take it; False: as given."""
    if wanted.strict is False:
        return wanted.schema, False
    form = closed(wanted.schema)
    problem = strict_problem(form)
    if problem is None:
        return form, True
    if wanted.strict:
        raise UsageError(f"the schema cannot be sent in strict mode: {problem}",
                         hint="make every property required and every object closed, or ask without strict mode")
    return wanted.schema, False


def response_format(wanted: ResponseSchema) -> dict[str, Any]:
    """OpenAI's `response_format`: JSON mode for a bare `{"type": "object"}` (serve's `json_object`),
    else `json_schema`, strict where the schema allows it."""
    if wanted.schema == {"type": "object"}:
        return {"type": "json_object"}
    schema, strict = openai_strict(wanted)
    spec: dict[str, Any] = {"name": wanted.name, "schema": schema, "strict": strict}
    if wanted.description:
        spec["description"] = wanted.description
    return {"type": "json_schema", "json_schema": spec}


def openai_forced_tool(wanted: ResponseSchema) -> dict[str, Any]:
    """`tools` + `tool_choice` that make an OpenAI-compatible model answer by calling one function
    whose parameters are the schema (for a server that refuses `response_format`)."""
    function: dict[str, Any] = {"name": wanted.name, "parameters": object_root(wanted, "the function tool")}
    function["description"] = wanted.description or "Give the answer as this function's arguments."
    return {"tools": [{"type": "function", "function": function}],
            "tool_choice": {"type": "function", "function": {"name": wanted.name}}}


def anthropic_tool(wanted: ResponseSchema) -> dict[str, Any]:
    """The Anthropic tool whose input is the answer (forced with tool_choice)."""
    return {"name": wanted.name, "description": wanted.description or "Give the answer as this tool's input.",
            "input_schema": object_root(wanted, "Anthropic's tool input")}


# Models with Anthropic's native structured output (`output_config.format`); others get the forced tool.
ANTHROPIC_NATIVE = re.compile(r"claude-(?:opus-4-1|(?:opus|sonnet|haiku)-(?:4-[5-9]|[5-9]))")
# What its constrained decoding does not take (its docs' "JSON Schema limitations").
ANTHROPIC_UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                         "maxLength", "maxItems", "patternProperties", "not", "if", "then", "else")


def anthropic_native(model: str, wanted: ResponseSchema) -> dict[str, Any] | None:
    """`output_config` asking for the schema natively, when the model has it and the schema closed to
    extra properties is in what it takes; None: use the forced tool."""
    if not ANTHROPIC_NATIVE.search(model):
        return None
    schema = closed(wanted.schema)
    if not is_object(schema):
        return None
    for _path, sub in subschemas(schema):
        if any(key in sub for key in ANTHROPIC_UNSUPPORTED) or sub.get("minItems", 0) > 1 or sub.get("$ref") == "#":
            return None
        if is_object(sub) and sub.get("additionalProperties") is not False:
            return None
    return {"format": {"type": "json_schema", "schema": schema}}


def object_root(wanted: ResponseSchema, where: str) -> dict[str, Any]:
    """The schema when its root is an object (a tool's input must be one), else one usage line."""
    if not is_object(wanted.schema):
        raise UsageError(f"{where} must be a JSON object, and the schema's root is not one",
                         hint='wrap it, e.g. {"type": "object", "properties": {"items": …}, "required": ["items"]}')
    return wanted.schema


RELAX = ("relax the rule it names (strict mode: every property required, every object with "
         "\"additionalProperties\": false), or ask without strict mode")


def refused_schema(err: StreamchatError, message: str | None) -> StreamchatError:
    """A provider's 400 about the response schema (OpenAI "Invalid schema for response_format …",
    Anthropic's about output_config) keeps its words, which name the rule, and says how to relax it
    instead of the generic "check the options". (A tool's input_schema is not named: an MCP tool's
    schema is refused in the same words as the answer tool's.)"""
    said = message or ""
    if type(err) is BadRequestError and any(key in said for key in ("response_format", "output_config")):
        err.hint = RELAX
    return err
