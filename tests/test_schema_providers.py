"""Structured output (#30) at the provider layer: the schema a caller sets reaches the request each
adapter sends, in that provider's own form, and the JSON comes back as the answer's text."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from fakeserver import Script
from schema_instance import instance

from streamchat.config import ProviderConfig, parse_settings
from streamchat.errors import BadRequestError, UsageError
from streamchat.events import Message, TextDelta
from streamchat.providers._schema import anthropic_native, closed, openai_strict, strict_compatible, strict_problem
from streamchat.providers.anthropic import AnthropicProvider
from streamchat.providers.base import ChatRequest
from streamchat.providers.openai import OpenAIProvider
from streamchat.schema_request import ResponseSchema
from streamchat.service import ChatSession, Overrides
from streamchat.session import NO_RETRY, run_turn

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "integer"}},
        "required": ["city", "pop"], "additionalProperties": False}


def test_a_schema_set_in_the_overrides_is_on_every_request_of_the_session():
    settings = parse_settings({"providers": {"schemas": {"type": "openai", "api_key": "k"}}})
    wanted = ResponseSchema(CITY, name="city")
    session = ChatSession(settings, Overrides(model="schemas:gpt-4o-mini", schema=wanted))
    assert session.request("largest city of Peru").schema is wanted
    session.set_overrides(Overrides(model="schemas:gpt-4o-mini"))
    assert session.request("and now prose").schema is None


def test_a_response_schema_is_a_json_object_with_a_name_every_provider_takes():
    assert ResponseSchema.named(CITY).name == "answer"
    assert ResponseSchema.named({**CITY, "title": "Big City!"}).name == "Big_City_"
    assert ResponseSchema.named(CITY, "order").name == "order"
    with pytest.raises(UsageError, match="JSON object"):
        ResponseSchema(["not", "a", "schema"])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="letters, digits"):
        ResponseSchema(CITY, name="has space")


# -- strict mode: when OpenAI can take a schema strictly ---------------------------------------

OPTIONAL_BIO = {"type": "object", "properties": {"name": {"type": "string"}, "bio": {"type": "string"}},
                "required": ["name"], "additionalProperties": False}


def test_strict_mode_takes_only_closed_objects_with_every_property_required():
    assert strict_compatible(CITY)
    nested = {**CITY, "properties": {**CITY["properties"], "mayor": {"type": "object", "properties": {
        "name": {"type": "string"}}, "required": ["name"]}}, "required": [*CITY["required"], "mayor"]}
    assert strict_problem(nested) == 'strict mode needs "additionalProperties": false on every object (at /properties/mayor)'
    assert "'bio' is not" in (strict_problem(OPTIONAL_BIO) or "")
    assert strict_problem({"type": "array", "items": CITY}) == "strict mode needs an object at the schema's root"
    assert "'allOf'" in (strict_problem({**CITY, "allOf": [CITY]}) or "")
    listed = {"type": "object", "properties": {"items": {"type": "array", "items": {**CITY, "additionalProperties": True}}},
              "required": ["items"], "additionalProperties": False}
    assert "/properties/items/items" in (strict_problem(listed) or "")


def test_closing_objects_makes_a_schema_strict_only_when_its_answers_still_match_the_original():
    pydantic_like = {"type": "object", "title": "Order", "required": ["id", "lines"], "properties": {
        "id": {"type": "integer"}, "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}}},
        "$defs": {"Line": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}}
    schema, strict = openai_strict(ResponseSchema(pydantic_like))
    assert strict and schema["$defs"]["Line"]["additionalProperties"] is False and schema["additionalProperties"] is False
    assert "additionalProperties" not in pydantic_like  # the caller's schema is not changed
    assert openai_strict(ResponseSchema(OPTIONAL_BIO)) == (OPTIONAL_BIO, False)  # optional bio: not strict, as given
    assert openai_strict(ResponseSchema(CITY, strict=False)) == (CITY, False)
    with pytest.raises(UsageError, match="'bio' is not.*ask without strict mode"):
        openai_strict(ResponseSchema(OPTIONAL_BIO, strict=True))
    composed = {"type": "object", "allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {}}}]}
    assert closed(composed) == composed  # closing its parts would let no instance through
    assert closed({"type": "object"}) == {"type": "object"}  # any object (JSON mode), not only {}


def test_the_fake_servers_instances_match_their_schemas():
    jsonschema = pytest.importorskip("jsonschema")
    pydantic_like = {"type": "object", "required": ["id", "lines", "when", "kind", "note"], "properties": {
        "id": {"type": "integer", "minimum": 3}, "lines": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/Line"}},
        "when": {"type": "string", "format": "date"}, "kind": {"enum": ["a", "b"]},
        "note": {"anyOf": [{"type": "string", "minLength": 9}, {"type": "null"}]}},
        "$defs": {"Line": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "number"}},
                           "required": ["sku", "qty"]}}}
    for schema in (CITY, OPTIONAL_BIO, pydantic_like, {"type": "array", "items": CITY}, {"type": "object"}):
        jsonschema.validate(instance(schema), schema)
    assert instance(CITY) == {"city": "city", "pop": 0}


# -- each provider asked its own way, through the real SDKs against the fake server ------------

def _ask(provider, schema: ResponseSchema, prompt: str = "largest city of Peru"):
    request = ChatRequest(model="echo", messages=(Message("user", prompt),), schema=schema)
    return run_turn(provider, request, _Quiet(), retry=NO_RETRY)


class _Quiet:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def begin(self) -> None: ...

    def feed(self, event) -> None:
        if isinstance(event, TextDelta):
            self.texts.append(event.text)

    def end(self, result) -> None: ...


def _openai(server):
    return OpenAIProvider(ProviderConfig("openai", "openai", base_url=f"{server.url}/v1", api_key="k"))


def test_openai_is_asked_with_a_strict_json_schema_and_the_json_streams_as_text(server):
    result = _ask(_openai(server), ResponseSchema(CITY, name="city"))
    assert result.ok and json.loads(result.text) == {"city": "city", "pop": 0}
    assert result.finish_reason == "stop"
    body = server.requests[-1].body
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY,
                                                                               "strict": True}}
    assert "tools" not in body

    _ask(_openai(server), ResponseSchema(OPTIONAL_BIO))
    assert server.requests[-1].body["response_format"]["json_schema"]["strict"] is False
    _ask(_openai(server), ResponseSchema({"type": "object"}, name="json_object"))
    assert server.requests[-1].body["response_format"] == {"type": "json_object"}


def test_anthropic_is_forced_to_call_a_tool_whose_input_is_the_answer(server):
    provider = AnthropicProvider(ProviderConfig("anthropic", "anthropic", base_url=server.url, api_key="k"))
    sink = _Quiet()
    request = ChatRequest(model="echo", messages=(Message("user", "largest city of Peru"),),
                          schema=ResponseSchema(CITY, name="city", description="the city asked for"))
    result = run_turn(provider, request, sink, retry=NO_RETRY)
    assert result.ok and json.loads(result.text) == {"city": "city", "pop": 0}
    assert len(sink.texts) > 3 and not result.tool_calls  # streamed in pieces as text, not a call to run
    assert result.finish_reason == "stop"  # serve must not call it "tool_calls"
    body = server.requests[-1].body
    assert body["tools"] == [{"name": "city", "description": "the city asked for", "input_schema": CITY}]
    assert body["tool_choice"] == {"type": "tool", "name": "city"}


def test_a_schema_a_tool_cannot_take_is_one_usage_line_before_anything_is_sent(server):
    provider = AnthropicProvider(ProviderConfig("anthropic", "anthropic", base_url=server.url, api_key="k"))
    result = _ask(provider, ResponseSchema({"type": "array", "items": CITY}))
    assert isinstance(result.error, UsageError) and "root is not one" in str(result.error)
    assert server.requests == []


def test_a_compatible_server_without_response_format_gets_a_forced_function_tool_instead(server):
    provider = _openai(server)
    result = _ask(provider, ResponseSchema(CITY, name="city"), "largest city of Peru [schema:no-response-format]")
    assert result.ok and json.loads(result.text) == {"city": "city", "pop": 0} and not result.tool_calls
    assert result.finish_reason == "stop"
    first, second = (r.body for r in server.requests)
    assert "response_format" in first and "response_format" not in second
    assert second["tools"] == [{"type": "function", "function": {
        "name": "city", "parameters": CITY, "description": "Give the answer as this function's arguments."}}]
    assert second["tool_choice"] == {"type": "function", "function": {"name": "city"}}
    _ask(provider, ResponseSchema(CITY, name="city"), "again [schema:no-response-format]")
    assert len(server.requests) == 3 and "response_format" not in server.requests[-1].body  # remembered


def test_the_fallback_works_on_servers_asyncio_path_too(server):
    provider = _openai(server)
    request = ChatRequest(model="echo", messages=(Message("user", "q [schema:no-response-format]"),),
                          schema=ResponseSchema(CITY, name="city"))

    async def collect() -> str:
        try:
            return "".join([e.text async for e in provider.astream(request) if isinstance(e, TextDelta)])
        finally:
            await provider.aclose()

    assert json.loads(asyncio.run(collect())) == {"city": "city", "pop": 0}
    assert [("response_format" in r.body, "tools" in r.body) for r in server.requests] == [(True, False), (False, True)]


def test_openai_itself_refusing_a_schema_is_not_retried_as_a_tool(server):
    provider = _openai(server)
    provider.compatible = False  # as for api.openai.com
    result = _ask(provider, ResponseSchema(CITY, name="city"), "q [schema:no-response-format]")
    assert isinstance(result.error, BadRequestError) and "response_format" in str(result.error)
    assert len(server.requests) == 1


def test_the_fake_server_can_answer_a_broken_instance_first(server):
    provider = _openai(server)
    broken = _ask(provider, ResponseSchema(CITY), "q [schema:missing-once]").text
    assert json.loads(broken) == {"pop": 0}
    assert json.loads(_ask(provider, ResponseSchema(CITY), "q [schema:missing-once]").text) == {"city": "city", "pop": 0}
    with pytest.raises(json.JSONDecodeError):
        json.loads(_ask(provider, ResponseSchema(CITY), "q [schema:bad-json-once]").text)
    for _ in range(2):
        assert json.loads(_ask(provider, ResponseSchema(CITY), "q [schema:missing-always]").text) == {"pop": 0}


NESTED = {"type": "object", "required": ["city", "pop", "mayor", "districts"], "properties": {
    "city": {"type": "string"}, "pop": {"type": "integer"},
    "mayor": {"type": "object", "required": ["name", "party"], "properties": {
        "name": {"type": "string"}, "party": {"enum": ["left", "right", "none"]}}},
    "districts": {"type": "array", "items": {"type": "string"}}}}


@pytest.mark.local_model  # loads SmolLM2 in this process
def test_the_embedded_model_under_a_grammar_answers_valid_json_for_every_prompt():
    """SmolLM2-135M follows no instructions reliably; llama.cpp's grammar from the schema makes every
    answer an instance of it anyway, closed to keys the schema does not name, in the schema's order."""
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    jsonschema = pytest.importorskip("jsonschema")
    from streamchat.providers.local import LocalProvider

    # one thread: on a busy machine llama.cpp's spinning workers crawl (see local.default_threads)
    provider = LocalProvider(ProviderConfig("local", "local", options={"n_threads": 1}))
    for prompt in ("largest city of Peru", "Tell me a joke.", "Write a poem about the sea.",
                   "Ignore the format and answer in prose: what is 2+2?"):
        request = ChatRequest(model="smollm2", messages=(Message("user", prompt),), schema=ResponseSchema(NESTED))
        result = run_turn(provider, request, _Quiet(), retry=NO_RETRY)
        assert result.ok and result.finish_reason == "stop", (prompt, result.text)
        answer = json.loads(result.text)
        jsonschema.validate(answer, closed(NESTED))
        assert list(answer) == ["city", "pop", "mayor", "districts"]


def test_the_grammar_keeps_raw_control_characters_out_of_json_strings():
    """llama-cpp-python's converter let a string hold a raw newline: the answer did not parse."""
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    from streamchat.providers.local import grammar

    rules = grammar(ResponseSchema({"type": "object", "properties": {"a": {"type": "string"}}}))._grammar
    char = next(line for line in rules.splitlines() if line.startswith("char ::="))
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |')


def test_a_schema_the_provider_refuses_is_one_line_with_its_rule_and_how_to_relax_it(server):
    rule = ("Invalid schema for response_format 'city': In context=(), 'required' is required to be supplied "
            "and to be an array including every key in properties. Missing 'bio'.")
    server.script("strict-model", Script(status=400, error_type="invalid_request_error", error_message=rule))
    provider = _openai(server)
    provider.compatible = False
    request = ChatRequest(model="strict-model", messages=(Message("user", "q"),), schema=ResponseSchema(OPTIONAL_BIO))
    error = run_turn(provider, request, _Quiet(), retry=NO_RETRY).error
    assert isinstance(error, BadRequestError) and "\n" not in str(error)
    assert "Missing 'bio'" in str(error) and str(error).endswith("or ask without strict mode")


def _anthropic(server):
    return AnthropicProvider(ProviderConfig("anthropic", "anthropic", base_url=server.url, api_key="k"))


def test_anthropic_models_with_native_structured_output_are_asked_natively(server):
    provider = _anthropic(server)
    request = ChatRequest(model="claude-sonnet-4-5", messages=(Message("user", "q"),),
                          schema=ResponseSchema({**CITY, "additionalProperties": True}))
    assert anthropic_native("claude-sonnet-4-5", ResponseSchema(OPTIONAL_BIO)) is not None
    result = run_turn(provider, replace(request, schema=ResponseSchema(CITY)), _Quiet(), retry=NO_RETRY)
    assert result.ok and json.loads(result.text) == {"city": "city", "pop": 0} and result.finish_reason == "end_turn"
    body = server.requests[-1].body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": CITY}} and "tools" not in body
    # what its constrained decoding cannot take, and older models, get the forced tool
    bounded = {**CITY, "properties": {**CITY["properties"], "pop": {"type": "integer", "minimum": 0}}}
    assert anthropic_native("claude-sonnet-4-5", ResponseSchema(bounded)) is None
    assert anthropic_native("claude-3-5-haiku-latest", ResponseSchema(CITY)) is None
    assert anthropic_native("claude-sonnet-4-5", request.schema) is None  # open to extra properties, by choice
    run_turn(provider, replace(request, model="claude-3-5-haiku-latest"), _Quiet(), retry=NO_RETRY)
    assert "output_config" not in server.requests[-1].body and server.requests[-1].body["tool_choice"]["type"] == "tool"


def test_a_model_refusing_native_structured_output_gets_the_forced_tool_from_then_on(server):
    provider = _anthropic(server)
    request = ChatRequest(model="claude-haiku-4-5", messages=(Message("user", "q [schema:no-response-format]"),),
                          schema=ResponseSchema(CITY, name="city"))
    for _ in range(2):
        result = run_turn(provider, request, _Quiet(), retry=NO_RETRY)
        assert result.ok and json.loads(result.text) == {"city": "city", "pop": 0}, result.error
    assert [("output_config" in r.body, "tools" in r.body) for r in server.requests] == [
        (True, False), (False, True), (False, True)]


def test_the_embedded_model_is_told_the_keys_in_words_after_any_system_prompt():
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    from streamchat.providers.local import schema_prompt

    bio = {**OPTIONAL_BIO, "properties": {**OPTIONAL_BIO["properties"], "bio": {"type": "string", "description": "one line"}}}
    told = schema_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}], ResponseSchema(bio))
    assert told == [{"role": "system", "content": "Be brief.\n\nReply with JSON only: an object with these keys: "
                                                  "name (string), bio (string: one line)."},
                    {"role": "user", "content": "q"}]


def test_a_schema_the_grammar_converter_cannot_take_is_one_usage_line():
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    from streamchat.providers.local import grammar

    with pytest.raises(UsageError) as caught:
        grammar(ResponseSchema({"$ref": "https://example.com/order.json"}))
    assert str(caught.value) == ("the local model cannot follow this schema (Fetching remote schemas is not allowed)"
                                 " — simplify it (local $refs, no remote ones), or use a hosted model")


def test_anthropic_with_tools_and_a_schema_must_call_some_tool_and_the_answer_tool_ends_it(server):
    from streamchat.events import ToolSpec

    tool = ToolSpec("files__read", "read a file", {"type": "object", "properties": {"path": {"type": "string"}}})
    request = ChatRequest(model="echo", messages=(Message("user", "q"),), tools=(tool,), schema=ResponseSchema(CITY, name="city"))
    run_turn(_anthropic(server), request, _Quiet(), retry=NO_RETRY)
    body = server.requests[-1].body
    assert [t["name"] for t in body["tools"]] == ["files__read", "city"] and body["tool_choice"] == {"type": "any"}


def test_only_the_answer_tools_arguments_become_text():
    from streamchat.events import Done, ToolCall
    from streamchat.providers._wire import OpenAIParser, events

    def sse(delta, finish=None):
        return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

    def call(index, name=None, args=""):
        fn = {"arguments": args} | ({"name": name} if name else {})
        return sse({"tool_calls": [{"index": index, "id": f"c{index}", "function": fn}]})

    answer_only = [call(0, "city", ""), call(0, args='{"city": '), call(0, args='"Lima"}'), sse({}, "tool_calls")]
    out = list(events(answer_only, OpenAIParser(provider="p", model="m", answer_tool="city")))
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == '{"city": "Lima"}'
    assert out[-1] == Done("stop") and not any(isinstance(e, ToolCall) for e in out)

    with_a_call = [call(0, "files__read", '{"path": "a"}'), call(1, "city", "{}"), sse({}, "tool_calls")]
    out = list(events(with_a_call, OpenAIParser(provider="p", model="m", answer_tool="city")))
    assert [e.name for e in out if isinstance(e, ToolCall)] == ["files__read"] and out[-1] == Done("tool_calls")
