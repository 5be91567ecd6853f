"""`--schema`: a JSON Schema from inline JSON, a file or the concise syntax, and answers checked against it.

Pure logic, no I/O beyond reading the schema file: the front ends (one-shot, REPL, roles) parse
SCHEMA here, ask the model, and check its answer with `Schema.check`. Validation is jsonschema's
(the schema itself with `check_schema`, the answer with the schema's own draft), so what streamchat
accepts is what any other JSON Schema tool would.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import exceptions, validators
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing import Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from streamchat.errors import UsageError
from streamchat.paths import user_path
from streamchat.schema_request import ResponseSchema

TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}  # concise syntax → JSON Schema
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # the refusal's hint states this rule (QA-24)
MESSAGE_MAX = 160  # a validation message quotes the answer's value: keep the line one line
REPAIR_PROBLEMS = 5  # how many problems a corrective request lists
# Where a `$ref` may lead: the schema itself and the drafts' own metaschemas. jsonschema's default
# registry fetches any http(s) reference (deprecated, but on), and llama.cpp's grammar converter
# fetches https ones: --schema must never reach the network by itself.
OFFLINE = METASCHEMAS


@dataclass(frozen=True)
class Schema:
    """A checked JSON Schema (an object at the top, as every provider requires), as the request
    field the providers read (`request`, set as `Overrides(schema=…)`)."""

    request: ResponseSchema

    @property
    def schema(self) -> dict[str, Any]:
        return self.request.schema

    def check(self, text: str) -> Verdict:
        """The answer `text` as data, or why it does not fit (the most relevant problem first)."""
        try:
            data = parse_answer(text)
        except ValueError as err:
            return Verdict(problems=(f"the answer is not JSON: {err}",))
        validator = validators.validator_for(self.schema)(self.schema, registry=OFFLINE)
        try:
            found = list(validator.iter_errors(data))
        except Unresolvable as err:  # a schema that did not pass load_schema (built in code)
            return Verdict(problems=(f"the schema's $ref does not resolve inside it: {_short(str(err))}",))
        except RecursionError:  # the model's answer nests deeper than the validator can follow
            return Verdict(problems=("the answer is nested too deeply to check",))
        if not found:
            return Verdict(data=data)
        best = exceptions.best_match(found)
        others = [e for e in sorted(found, key=lambda e: list(e.absolute_path)) if e is not best]
        return Verdict(problems=tuple(describe(e) for e in [best, *others]))


@dataclass(frozen=True)
class Verdict:
    """An answer checked against a schema: its data when it fits, else one line per problem."""

    data: Any = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def load_schema(spec: str, *, multi: bool = False, option: str = "--schema") -> Schema:
    """SCHEMA as given to `option`: inline JSON, a file holding JSON or the concise syntax, or the
    concise syntax itself. `multi` asks for `{"items": [...]}` of it. Anything wrong is a UsageError
    (exit 2) naming the problem, raised before a request is sent."""
    text, name = _source(spec, option) if spec.strip() else ("", None)
    stripped = text.strip()
    if not stripped:
        raise UsageError(f"{option} is empty", hint="give a JSON Schema, a file, or fields: 'name, age int'")
    if stripped.startswith("{"):
        try:
            schema = json.loads(stripped)
        except ValueError as err:
            raise UsageError(f"{option} is not valid JSON: {err}") from None
    else:
        schema = concise(stripped, option)
    check_schema(schema, option)
    title = schema.get("title")
    name = title if isinstance(title, str) and title.strip() else name
    return Schema(ResponseSchema.named(wrap_multi(schema) if multi else schema, name))


def _source(spec: str, option: str) -> tuple[str, str | None]:
    """(the schema's text, a name for it): a file's content and stem, or `spec` itself (no name).

    A file only when `spec` looks like a path — it holds a `/`, starts with `~` or ends in `.json`:
    `--schema city` is the one field `city` even where a file of that name is in the working
    directory (it was read, and a JSON Schema in it silently asked for other fields)."""
    if spec.lstrip().startswith("{") or "," in spec or "\n" in spec:
        return spec, None
    if not (spec.endswith(".json") or "/" in spec or spec.startswith("~")):
        return spec, None
    path = user_path(spec)
    if not path.is_file():
        reason = "not a file" if path.exists() else "no such file"
        raise UsageError(f"{option} {spec}: {reason}", hint="give a JSON Schema file, inline JSON, or fields: 'name, age int'")
    try:
        return path.read_text(encoding="utf-8"), path.stem
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not UTF-8 text"
        raise UsageError(f"{option} {spec}: cannot read it ({reason})") from None


def concise(text: str, option: str = "--schema") -> dict[str, Any]:
    """`'name, age int, bio: a one-line bio'` → an object schema: fields split at newlines when there
    are any (so a description may hold commas), else at commas; `NAME [TYPE][: DESCRIPTION]`, type
    str unless given; every field required, no others allowed (what strict modes need)."""
    properties: dict[str, dict[str, str]] = {}
    for raw in text.split("\n") if "\n" in text else text.split(","):
        field = raw.strip()
        if not field:
            continue
        head, _, description = field.partition(":")
        words = head.split()
        if not words or len(words) > 2:
            raise UsageError(f"{option}: cannot read the field '{field}'", hint="write NAME [TYPE][: description], e.g. 'age int'")
        name, kind = words[0], words[1] if len(words) == 2 else "str"
        if not FIELD_NAME.match(name):
            file = f"; a schema file is read when it looks like a path: ./{name}" if "." in name and len(words) == 1 else ""
            raise UsageError(f"{option}: '{name}' is not a field name",
                             hint=f"start with an ASCII letter or _, then ASCII letters, digits, _ and -{file}")
        if kind not in TYPES:
            close = difflib.get_close_matches(kind, TYPES, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"{option}: unknown type '{kind}' for field '{name}'", hint=f"{guess}types: {', '.join(TYPES)}")
        if name in properties:
            raise UsageError(f"{option}: the field '{name}' is given twice")
        prop = {"type": TYPES[kind]}
        if description.strip():
            prop["description"] = description.strip()
        properties[name] = prop
    if not properties:
        raise UsageError(f"{option} names no field", hint="e.g. 'name, age int, bio: a one-line bio'")
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def check_schema(schema: Any, option: str = "--schema") -> None:
    """A valid JSON Schema (for the draft its `$schema` names, else the latest) describing an object:
    OpenAI's response_format and a forced tool's input both need one at the top."""
    if not isinstance(schema, dict):
        raise UsageError(f"{option} must be a JSON object (a JSON Schema), not {type(schema).__name__}")
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as err:
        raise UsageError(f"{option} is not a valid JSON Schema: {_short(err.message)} at {err.json_path}") from None
    except RecursionError:  # the checker recurses once per level: ~100 levels were "internal error", exit 1
        raise UsageError(f"{option} is nested too deeply to check", hint="flatten it with $defs and local $refs") from None
    if schema.get("type") != "object":
        raise UsageError(f'{option} must describe an object ("type": "object") at the top',
                         hint="for a list of things, add --schema-multi")
    _check_refs(schema, option)


def _check_refs(schema: dict[str, Any], option: str) -> None:
    """Every `$ref` resolves inside the schema (or to a draft's metaschema): nothing is fetched,
    and a reference to nowhere is a usage error before the request, not a crash after the answer."""
    dialect = schema.get("$schema")
    spec = specification_with(dialect if isinstance(dialect, str) else "", default=DRAFT202012)
    root: Resource[Any] = spec.create_resource(schema)
    pending = [(root, OFFLINE.resolver_with_root(root))]
    while pending:
        resource, resolver = pending.pop()
        ref = resource.contents.get("$ref") if isinstance(resource.contents, dict) else None
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise UsageError(f"{option}: $ref {_short(ref)!r} does not resolve inside the schema",
                                 hint="streamchat fetches no schema: put what it names under \"$defs\" "
                                      "and point to \"#/$defs/NAME\"") from None
        pending += [(sub, resolver.in_subresource(sub)) for sub in resource.subresources()]


def wrap_multi(schema: dict[str, Any]) -> dict[str, Any]:
    """`--schema-multi`: `{"items": [schema, …]}`. Definitions move to the top, where `#/$defs/…` points."""
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    outer: dict[str, Any] = {k: schema[k] for k in ("$schema", "$defs", "definitions") if k in schema}
    return {**outer, "type": "object", "properties": {"items": {"type": "array", "items": inner}},
            "required": ["items"], "additionalProperties": False}


def parse_answer(text: str) -> Any:
    """The JSON in an answer: the whole text, or inside a ``` fence, or the first object in prose
    around it (a model without a JSON mode often adds either). ValueError names where it breaks."""
    body = text.strip()
    fence = re.match(r"```[\w-]*\n(.*?)\n?```\s*\Z", body, re.S)
    if fence:
        body = fence.group(1).strip()
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except ValueError as err:
        start = body.find("{")
        if start > 0:
            try:
                return json.JSONDecoder().raw_decode(body, start)[0]
            except (ValueError, RecursionError):
                pass
        raise ValueError(f"{err.msg} at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError)
                         else str(err)) from None


def describe(error: exceptions.ValidationError) -> str:
    """One line: where in the answer (`items[0].pop`, or `top level`) and why."""
    where = error.json_path.removeprefix("$").removeprefix(".") or "top level"
    return f"{where}: {_short(error.message)}"


def dump(data: Any, *, pretty: bool) -> str:
    """The document as a person reads it (indented) or a script does (one compact line)."""
    if pretty:
        return json.dumps(data, indent=2, ensure_ascii=False)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def repair_prompt(problems: tuple[str, ...]) -> str:
    """The corrective request: the validator's words, and what to send instead."""
    listed = "\n".join(f"- {p}" for p in problems[:REPAIR_PROBLEMS])
    return (f"Your answer does not match the JSON schema:\n{listed}\n"
            "Reply again with only the corrected JSON, nothing else.")


def _short(message: str) -> str:
    one = " ".join(message.split())
    return one if len(one) <= MESSAGE_MAX else one[: MESSAGE_MAX - 1] + "…"

