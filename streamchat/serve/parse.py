"""Request bodies → a validated call. Every malformed field is a 400 naming it; nothing is ignored.

One parser serves `/stream`, `/ws` and `/v1/chat/completions`: the OpenAI fields and ours
(`prompt`, `system`) differ only in which keys each endpoint accepts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from streamchat.attachments import KINDS as ATTACHMENT_KINDS
from streamchat.errors import UsageError
from streamchat.events import TOOL_NAME_CHARS, Attachment, Message, Role, ToolCall, ToolChoice, ToolSpec
from streamchat.schema_request import NAME as SCHEMA_NAME
from streamchat.schema_request import ResponseSchema
from streamchat.serve.policy import Refused

ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                          "tool": "tool"}
# Sampling parameters passed to providers that support them (each adapter lists its own).
SAMPLING = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
OPENAI_KEYS = frozenset({"model", "messages", "stream", "stream_options", "temperature", "max_tokens",
                         "max_completion_tokens", "n", "user", "tools", "tool_choice", "parallel_tool_calls",
                         "response_format", *SAMPLING})
NATIVE_KEYS = frozenset({"model", "messages", "prompt", "system", "temperature", "max_tokens", *SAMPLING})
QUERY_KEYS = frozenset({"prompt", "model", "system"})  # GET /stream's query; the rest only in POST /stream's body
MAX_DEPTH = 32


@dataclass(frozen=True)
class Call:
    """What one request asks for, checked."""

    messages: tuple[Message, ...]
    model: Any = None  # checked by the model policy
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    params: tuple[tuple[str, Any], ...] = field(default=())
    tools: tuple[ToolSpec, ...] = ()  # the client's own tools: passed to the model, run by the client
    tool_choice: ToolChoice | None = None
    schema: ResponseSchema | None = None  # response_format: the answer is JSON matching it


def _bad(param: str, what: str) -> Refused:
    return Refused(400, f"'{param}' {what}", "invalid_request", param=param)


def decode_json(raw: bytes) -> dict[str, Any]:
    """A JSON object from bytes: UTF-8 only, no NaN/Infinity, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the body is not valid UTF-8 (byte {exc.start})", "invalid_json") from None

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    overflowed = False

    def finite(number: str) -> float:  # 1e999 reads as infinity, which no JSON encoder writes again
        nonlocal overflowed
        value = float(number)
        overflowed = overflowed or math.isinf(value)
        return value

    try:
        body = json.loads(text or "{}", parse_constant=no_constants, parse_float=finite)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"invalid JSON: {getattr(exc, 'msg', None) or exc}"[:200], "invalid_json") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object", "invalid_body")
    if _depth(body) > MAX_DEPTH:
        raise Refused(400, f"the body is nested deeper than {MAX_DEPTH} levels", "invalid_body")
    if overflowed:
        where = _infinite_at(body, "") or "body"
        raise Refused(400, f"'{where}' is a number out of range: JSON numbers must be finite (at most ±1.8e308)",
                      "invalid_request", param=where)
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(body):
        raise Refused(400, "invalid JSON: a \\uD800–\\uDFFF escape without the other half of its surrogate pair "
                           "is not text", "invalid_json")
    return body


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # cheap first look: most bodies have none


def _lone_surrogate(value: Any) -> bool:
    """Whether a parsed string (key or value) holds half a UTF-16 pair: json reads an unpaired
    escape into a str that no encoder accepts, so the upstream request would fail as ours."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _infinite_at(value: Any, path: str) -> str | None:
    """Where in a parsed body a number read as infinity is, as `tools[0].function.parameters.x`."""
    if isinstance(value, float) and math.isinf(value):
        return path[:200]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, int):
            step = f"{path}[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            step = f"{path}.{key}" if path else key
        else:
            step = f"{path}[{json.dumps(key)[:40]}]"
        found = _infinite_at(item, step)
        if found is not None:
            return found
    return None


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _content(value: Any, where: str) -> tuple[str, tuple[Attachment, ...]]:
    """A message's content: a string, or OpenAI content parts (`text`, `image_url` and `file` with
    data URLs). Remote image URLs are not fetched: the server would make requests for its clients."""
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise _bad(where, "must be a string or a list of content parts")
    texts: list[str] = []
    attachments: list[Attachment] = []
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        here = f"{where}[{i}]"
        if kind == "text" and isinstance(part, dict):
            if not isinstance(part.get("text"), str):
                raise _bad(f"{here}.text", "must be a string")
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part, dict):
            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
            attachments.append(_data_url(url, f"{here}.image_url.url", f"image-{i}"))
        elif kind == "file" and isinstance(part, dict):
            file: dict[str, Any] = part["file"] if isinstance(part.get("file"), dict) else {}
            filename = file.get("filename")
            name = filename if isinstance(filename, str) else f"file-{i}"
            attachments.append(_data_url(file.get("file_data"), f"{here}.file.file_data", name))
        else:
            raise _bad(here, f"has type '{kind}': only text, image_url and file parts are supported")
    return "".join(texts), tuple(attachments)


def _data_url(url: Any, where: str, name: str) -> Attachment:
    import base64
    import binascii

    import filetype

    if not isinstance(url, str) or not url.startswith("data:"):
        raise _bad(where, "must be a data: URL (remote URLs are not fetched by the server)")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise _bad(where, "must be a base64 data: URL")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(where, "is not valid base64") from None
    kind = filetype.guess(data)
    if kind is None or kind.mime not in ATTACHMENT_KINDS:
        raise _bad(where, "is not a PNG, JPEG, GIF, WebP or PDF")
    return Attachment(name, kind.mime, data)


def _messages(body: dict[str, Any], *, openai: bool) -> tuple[Message, ...]:
    if "messages" in body:
        if not isinstance(body["messages"], list):
            raise _bad("messages", "must be a list")
        out = []
        for i, m in enumerate(body["messages"]):
            if not isinstance(m, dict) or m.get("role") not in ROLES or (m["role"] == "tool" and not openai):
                raise _bad(f"messages[{i}].role", "must be system, developer, user, assistant"
                           + (" or tool" if openai else ""))
            if m.get("tool_calls") and not openai:  # dropped here before, against "nothing is ignored"
                raise _bad(f"messages[{i}].tool_calls", "is not supported on /stream and /ws: "
                           "send a conversation with tool calls to /v1/chat/completions")
            text, attachments = _message_content(m, i, openai=openai)
            if m["role"] == "tool":
                if not isinstance(m.get("tool_call_id"), str) or not m["tool_call_id"]:
                    raise _bad(f"messages[{i}].tool_call_id", "must name the call this result answers")
                out.append(Message("tool", text, tool_call_id=m["tool_call_id"]))
            elif m["role"] == "assistant" and m.get("tool_calls") and openai:
                out.append(Message("assistant", text, attachments, tool_calls=_calls(m["tool_calls"], f"messages[{i}]")))
            else:
                out.append(Message(ROLES[m["role"]], text, attachments))
    elif isinstance(body.get("prompt"), str):
        if not body["prompt"]:
            raise _bad("prompt", "is empty: ask something")
        out = [Message("user", body["prompt"])]
    else:
        raise Refused(400, "send 'messages' (a list) or 'prompt' (a string)", "missing_prompt",
                      param="prompt" if "prompt" in body else "messages")
    if not out or out[-1].role not in ("user", "tool"):
        raise Refused(400, "the last message must be from the user (or tool results)", "missing_prompt", param="messages")
    return tuple(out)


def _message_content(m: dict[str, Any], i: int, *, openai: bool) -> tuple[str, tuple[Attachment, ...]]:
    """A message's text and attachments; none at all is a 400 (QA-23: it went upstream as an empty
    turn), except a tool's result, which may be "", and an assistant's turn that made tool calls."""
    where = f"messages[{i}].content"
    calls = m["role"] == "assistant" and bool(m.get("tool_calls")) and openai
    if m.get("content") is None and not calls:
        raise _bad(where, "is missing: give the message's text (a string or content parts)")
    text, attachments = _content(m.get("content") or "", where)
    if not text and not attachments and m["role"] != "tool" and not calls:
        raise _bad(where, "is empty: give the message's text (a string or content parts)")
    return text, attachments


def _calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    """An assistant message's `tool_calls`, as the client got them from us earlier."""
    if not isinstance(value, list):
        raise _bad(f"{where}.tool_calls", "must be a list")
    calls = []
    for j, c in enumerate(value):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(c.get("id"), str) or not isinstance(fn.get("name"), str) \
                or not isinstance(fn.get("arguments", ""), str):
            raise _bad(f"{where}.tool_calls[{j}]", "must have an id and a function with a name and arguments")
        calls.append(ToolCall(c["id"], fn["name"], fn.get("arguments") or "{}", j))
    return tuple(calls)


TOOL_NAME = re.compile(rf"[{TOOL_NAME_CHARS}]{{1,64}}")


def _tools(body: dict[str, Any]) -> tuple[tuple[ToolSpec, ...], ToolChoice | None]:
    """`tools` (functions only, at most 128) and `tool_choice`."""
    given = body.get("tools")
    if given is None:
        tools: list[ToolSpec] = []
    elif not isinstance(given, list) or len(given) > 128:
        raise _bad("tools", "must be a list of at most 128 tools")
    else:
        tools = []
        for i, t in enumerate(given):
            fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not TOOL_NAME.fullmatch(fn["name"]):
                raise _bad(f"tools[{i}]", "must be {\"type\": \"function\", \"function\": {\"name\": …}} "
                                          "with a name of letters, digits, _ or -")
            parameters = fn.get("parameters", {"type": "object", "properties": {}})
            description = fn.get("description", "")
            if not isinstance(parameters, dict) or not isinstance(description, str):
                raise _bad(f"tools[{i}].function", "parameters must be an object and description a string")
            tools.append(ToolSpec(fn["name"], description, parameters))
    choice = body.get("tool_choice")
    if choice is None:
        return tuple(tools), None
    if choice in ("auto", "none", "required"):
        return tuple(tools), (choice, None)
    fn = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    if not isinstance(fn, dict) or fn.get("name") not in {t.name for t in tools}:
        raise _bad("tool_choice", "must be auto, none, required, or a function named in tools")
    return tuple(tools), ("tool", fn["name"])


JSON_OBJECT = ResponseSchema({"type": "object"}, name="json_object", strict=False)  # JSON mode: any object


def _response_format(body: dict[str, Any]) -> ResponseSchema | None:
    """OpenAI's `response_format`: `text` (the default), `json_object`, or `json_schema` with a
    name, a JSON Schema (checked here, so a typo is a 400 and not an upstream's riddle), `strict`
    and `description`."""
    given = body.get("response_format")
    kind = given.get("type") if isinstance(given, dict) else None
    if given is None or (kind == "text" and set(given) == {"type"}):
        return None
    if kind == "json_object" and set(given) == {"type"}:
        return JSON_OBJECT
    if kind != "json_schema" or set(given) != {"type", "json_schema"}:
        raise _bad("response_format", 'must be {"type": "json_schema", "json_schema": {…}}, '
                                      '{"type": "json_object"} or {"type": "text"}')
    spec = given["json_schema"]
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise _bad(where, "must be an object with a name and a schema")
    if extra := sorted(set(spec) - {"name", "schema", "strict", "description"}):
        raise _bad(f"{where}.{extra[0]}", "is not a json_schema field (name, schema, strict, description)")
    if not isinstance(spec.get("name"), str) or not SCHEMA_NAME.fullmatch(spec["name"]):
        raise _bad(f"{where}.name", "must be 1–64 letters, digits, _ or -")
    strict = spec.get("strict")  # not given: strict where the schema allows it (the providers decide)
    if strict is not None and not isinstance(strict, bool):
        raise _bad(f"{where}.strict", "must be true or false")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad(f"{where}.description", "must be a string")
    if "schema" not in spec:
        raise _bad(f"{where}.schema", "is missing: give the JSON Schema the answer must match")
    from streamchat.schema import check_schema

    try:
        check_schema(spec.get("schema"), option=f"'{where}.schema'")
    except UsageError as err:  # the message only: its hint is for the command line
        raise Refused(400, err.message, "invalid_request", param=f"{where}.schema") from None
    return ResponseSchema(spec["schema"], spec["name"], strict, description or None)


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise _bad(key, f"must be a number from {low:g} to {high:g}")
    return float(value)


def _max_tokens(body: dict[str, Any], key: str) -> int | None:
    """`max_tokens` (or `max_completion_tokens`) checked by the Option /set checks it with: a whole
    number from 1 to MAX_TOKENS, as --max-tokens and the config take (there was no ceiling here)."""
    from streamchat.providers.options import SAMPLING, BadValue, coerce

    value = body.get(key)
    if value is None:
        return None
    try:
        return int(coerce(SAMPLING["max_tokens"], value))
    except BadValue as exc:
        raise _bad(key, f"must be {exc}") from None


def sampling(options: dict[str, Any]) -> tuple[float | None, int | None, tuple[tuple[str, Any], ...]]:
    """(temperature, max_tokens, further sampling options) of `options`, checked as a request's are:
    the Python API's `options=` takes the same names and bounds."""
    return _number(options, "temperature", 0, 2), _max_tokens(options, "max_tokens"), _params(options)


def _params(body: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The SAMPLING fields, typed and checked by the OpenAI adapter's option table (as -o is)."""
    from streamchat.providers.openai import OPTIONS
    from streamchat.providers.options import BadValue, coerce

    out: list[tuple[str, Any]] = []
    for key in SAMPLING:
        if body.get(key) is not None:
            try:
                out.append((key, coerce(OPTIONS[key], body[key])))
            except BadValue as exc:
                raise _bad(key, f"must be {exc}") from None
    return tuple(out)


def query_body(items: Any) -> dict[str, str]:
    """A query string's (key, value) pairs as a body for `parse_call(..., query=True)`: a repeated
    parameter is a 400, not the last one silently (QA-25)."""
    body: dict[str, str] = {}
    for key, value in items:
        if key in body:
            raise _bad(key, "is given more than once")
        body[key] = value
    return body


def parse_call(body: dict[str, Any], *, openai: bool, query: bool = False) -> Call:
    """Check a request body; `openai` for /v1/chat/completions, else /stream and /ws; `query` for
    GET /stream's query parameters (`query_body`), which take only QUERY_KEYS."""
    allowed = QUERY_KEYS if query else OPENAI_KEYS if openai else NATIVE_KEYS
    for key in body:
        if key not in allowed:
            also = " in a query: POST /stream takes it in its body" if query and key in NATIVE_KEYS else ""
            raise Refused(400, f"parameter '{key}' is not supported by streamchat serve{also}", "unsupported_parameter",
                          param=key)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "must be true or false")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool)
                                or set(options) - {"include_usage"}):
        raise _bad("stream_options", "must be an object with a boolean 'include_usage'")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n", "must be 1 (one answer per request)")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        raise _bad("system", "must be a string")
    max_tokens = _max_tokens(body, "max_tokens")
    if max_tokens is None:
        max_tokens = _max_tokens(body, "max_completion_tokens")
    tools, tool_choice = _tools(body)
    params = _params(body)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool) or not tools:
            raise _bad("parallel_tool_calls", "must be true or false, with tools")
        params += (("parallel_tool_calls", parallel),)
    return Call(messages=_messages(body, openai=openai), model=body.get("model"), system=system or None,
                temperature=_number(body, "temperature", 0, 2), max_tokens=max_tokens, stream=stream,
                include_usage=bool((options or {}).get("include_usage")), params=params,
                tools=tools, tool_choice=tool_choice, schema=_response_format(body))
