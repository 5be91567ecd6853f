"""A small valid instance of a JSON Schema: what the fake server answers a schema request with (#30).

Pure and deterministic: required properties only, one item per array (at least minItems), the
first enum / anyOf choice, strings named after their property (`{"city": "city"}`), numbers at
their lower bound. Covers the schemas streamchat's tests send (objects, arrays, $ref, unions,
enums, formats); not every JSON Schema keyword.
"""

from __future__ import annotations

import math
from typing import Any

FORMATS = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00Z",
           "email": "a@example.com", "uri": "https://example.com", "uuid": "00000000-0000-4000-8000-000000000000"}


def instance(schema: Any, root: dict[str, Any] | None = None, name: str = "text") -> Any:
    """A value that `schema` accepts. `root`: the whole schema, for `$ref`s; `name`: the property's
    name, the value of a plain string."""
    root = root if root is not None else schema
    if schema is True or not isinstance(schema, dict):
        return name
    if "$ref" in schema:
        return instance(_resolve(root, schema["$ref"]), root, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return instance(schema[key][0], root, name)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = instance(part, root, name)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: instance(props.get(key, {}), root, key) for key in schema.get("required") or ()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1) if schema.get("maxItems", 1) else 0
        prefix = schema.get("prefixItems") or []
        return [instance(prefix[i] if i < len(prefix) else schema.get("items", {}), root, name) for i in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in schema else 0)
        return math.ceil(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = FORMATS.get(schema.get("format", ""), name)
    low = schema.get("minLength", 0)
    return (text * (low // max(len(text), 1) + 1))[: max(low, len(text))][: schema.get("maxLength", 10**6)]


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """A local `#/…` reference (pydantic's `#/$defs/Name`)."""
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref != "#" else ():
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
