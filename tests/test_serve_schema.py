"""Structured output through the gateway (#30): `response_format` on /v1/chat/completions, checked here
and asked of each provider type in its own way; the OpenAI SDK's `parse()` and `stream()` get their model."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from servehelp import ServeProcess

from streamchat.providers._sdk import import_sdk
from streamchat.schema_request import ResponseSchema
from streamchat.serve.parse import JSON_OBJECT, parse_call
from streamchat.serve.policy import Refused

# The SDK as streamchat imports it (its httpx path): a plain `import openai` at collection loads its aiohttp
# transport for the whole worker, and test_chat_service's in-process asyncio turns then run on aiohttp.
openai = import_sdk("openai")

ASK = [{"role": "user", "content": "an order"}]
ORDER = {"type": "object", "properties": {"item": {"type": "string"}, "qty": {"type": "integer"}},
         "required": ["item", "qty"], "additionalProperties": False}


def _call(response_format):
    return parse_call({"messages": ASK, "response_format": response_format}, openai=True)


def test_response_format_is_parsed_into_a_schema_request():
    given = _call({"type": "json_schema", "json_schema": {"name": "Order", "schema": ORDER, "strict": True}})
    assert given.schema == ResponseSchema(ORDER, "Order", strict=True)
    assert _call({"type": "json_object"}).schema == JSON_OBJECT
    assert JSON_OBJECT.schema == {"type": "object"} and JSON_OBJECT.strict is False
    assert _call({"type": "text"}).schema is None
    assert parse_call({"messages": ASK}, openai=True).schema is None
    loose = _call({"type": "json_schema", "json_schema": {"name": "o", "schema": ORDER, "description": "one order"}})
    assert loose.schema == ResponseSchema(ORDER, "o", strict=None, description="one order")  # None: where it can
    off = _call({"type": "json_schema", "json_schema": {"name": "o", "schema": ORDER, "strict": False}})
    assert off.schema is not None and off.schema.strict is False


@pytest.mark.parametrize(("response_format", "field", "why"), [
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "strin"}}},
     "response_format.json_schema.schema", "not a valid JSON Schema"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": {"properties": {"a": {"minLength": -1}}}}},
     "response_format.json_schema.schema", "at $.properties.a.minLength"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object", "required": "a"}}},
     "response_format.json_schema.schema", "at $.required"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "array"}}},
     "response_format.json_schema.schema", "must describe an object"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": "{}"}}, "response_format.json_schema.schema", "object"),
    ({"type": "json_schema", "json_schema": {"name": "o"}}, "response_format.json_schema.schema", "is missing"),
    ({"type": "json_schema", "json_schema": {"name": "a b", "schema": ORDER}}, "response_format.json_schema.name", "letters"),
    ({"type": "json_schema", "json_schema": {"schema": ORDER}}, "response_format.json_schema.name", "letters"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": ORDER, "strict": "yes"}},
     "response_format.json_schema.strict", "true or false"),
    ({"type": "json_schema", "json_schema": {"name": "o", "schema": ORDER, "strcit": True}},
     "response_format.json_schema.strcit", "not a json_schema field"),
    ({"type": "json_schema", "json_schema": []}, "response_format.json_schema", "object"),
    ({"type": "json_schema"}, "response_format", "json_schema"),
    ({"type": "json_object", "schema": ORDER}, "response_format", "json_object"),
    ({"type": "yaml"}, "response_format", "json_schema"),
    ("json", "response_format", "json_schema"),
])
def test_malformed_response_format_is_a_400_naming_the_field(response_format, field, why):
    with pytest.raises(Refused) as info:
        _call(response_format)
    assert info.value.status == 400 and info.value.message.startswith(f"'{field}' "), info.value.message
    assert why in info.value.message


def test_response_format_is_an_openai_field_only():
    with pytest.raises(Refused, match="'response_format' is not supported"):
        parse_call({"prompt": "q", "response_format": {"type": "json_object"}}, openai=False)


# -- through a real `streamchat serve`, with the OpenAI SDK as the client -----------------------

class Item(BaseModel):
    name: str
    qty: int


class Order(BaseModel):
    """Nested, with a list and a bool: what a script asks for."""

    customer: str
    items: list[Item]
    express: bool


@pytest.fixture(scope="module")
def _serve(_server_instance, tmp_path_factory):
    # "plain": a compatible server of its own, as the adapter remembers that a server refused response_format
    plain = f'[providers.plain]\ntype = "openai"\nbase_url = "{_server_instance.url}/v1"\n'
    proc = ServeProcess(tmp_path_factory.mktemp("serve"), _server_instance, "-m", "openai:echo",
                        *(f"--allow-model={p}:*" for p in ("openai", "anthropic", "compat", "plain")), config_extra=plain)
    yield proc
    proc.stop()


@pytest.fixture
def client(_serve, server):
    return openai.OpenAI(base_url=f"{_serve.url}/v1", api_key="unused", max_retries=0)


def _parsed_both_ways(client, model, say=""):
    """`parse()` and `stream()`: each returns an Order, and the stream came in pieces."""
    ask = [{"role": "user", "content": ASK[0]["content"] + say}]
    done = client.chat.completions.parse(model=model, messages=ask, response_format=Order)
    assert done.choices[0].finish_reason == "stop"
    assert isinstance(done.choices[0].message.parsed, Order), done.choices[0].message.content
    with client.chat.completions.stream(model=model, messages=ask, response_format=Order) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert isinstance(final.choices[0].message.parsed, Order), final.choices[0].message.content
    assert len(deltas) > 1 and "".join(deltas) == final.choices[0].message.content
    return done.choices[0].message.parsed, final.choices[0].message.parsed


def _asked_as(body):
    """How the upstream request carried the schema."""
    if "output_config" in body:
        return "native", body["output_config"]["format"]["schema"]
    if "response_format" in body:
        return "response_format", body["response_format"]["json_schema"]["schema"]
    tool = body["tools"][-1]
    return "tool", tool.get("input_schema") or tool["function"]["parameters"]


@pytest.mark.parametrize(("model", "say", "asked_as"), [
    ("openai:echo", "", "response_format"),
    ("compat:echo", "", "response_format"),
    ("plain:echo", " [schema:no-response-format]", "tool"),  # a server without it: a forced function
    ("anthropic:echo", "", "tool"),
    ("anthropic:claude-sonnet-4-5", "", "native"),  # Anthropic's own structured output
])
def test_sdk_parse_and_stream_get_a_pydantic_model(client, server, model, say, asked_as):
    _parsed_both_ways(client, model, say)
    how, schema = _asked_as(server.requests[-1].body)
    assert how == asked_as and schema["required"] == ["customer", "items", "express"]


def test_json_object_mode_for_every_provider(client, server):
    """`json_object`: OpenAI gets JSON mode as asked; the others an object schema in their own way."""
    for model in ("openai:echo", "anthropic:echo"):
        done = client.chat.completions.create(model=model, messages=ASK, response_format={"type": "json_object"})
        assert isinstance(json.loads(done.choices[0].message.content), dict)
        assert done.choices[0].finish_reason == "stop"
    assert server.requests[0].body["response_format"] == {"type": "json_object"}
    assert server.requests[1].body["tool_choice"]["type"] == "tool"


def test_malformed_schema_is_a_400_naming_the_field(client, server):
    broken = {"type": "json_schema", "json_schema": {"name": "Order", "schema": {"type": "object", "required": "x"}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="openai:echo", messages=ASK, response_format=broken)
    assert "'response_format.json_schema.schema' is not a valid JSON Schema" in info.value.message
    assert "at $.required" in info.value.message
    assert not server.requests  # nothing sent upstream


def test_sdk_parse_and_stream_to_the_local_model(tmp_path, server):
    """The embedded model answers through a grammar built from the schema: a 135M model cannot
    emit JSON that does not parse into the Order."""
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    proc = ServeProcess(tmp_path, server, "-m", "local", config_extra="[providers.local]\nn_threads = 1\n")
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0, timeout=120)
        _parsed_both_ways(client, "local")
    finally:
        proc.stop()


def test_strict_on_a_schema_strict_mode_cannot_take_is_a_400_naming_the_rule(client, server):
    loose = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    strict = {"type": "json_schema", "json_schema": {"name": "loose", "schema": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="openai:echo", messages=ASK, response_format=strict)
    assert "strict mode needs every property required; 'b' is not" in info.value.message
    assert not server.requests
    unsaid = {"type": "json_schema", "json_schema": {"name": "loose", "schema": loose}}  # strict where it can be
    done = client.chat.completions.create(model="openai:echo", messages=ASK, response_format=unsaid)
    assert json.loads(done.choices[0].message.content) == {"a": "a"}
    assert server.requests[-1].body["response_format"]["json_schema"]["strict"] is False
