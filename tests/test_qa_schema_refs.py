"""--schema never fetches anything: a `$ref` must resolve inside the schema itself.

jsonschema's default registry still retrieves `http(s)://` references with urllib (deprecated,
but on), and llama.cpp's grammar converter fetches `https://` ones with requests: a schema
naming a remote `$ref` made streamchat fetch it after the question was sent and paid for, and one
that did not resolve was "internal error", exit 1. Now it is exit 2, before anything is sent.
"""

from __future__ import annotations

import json

import pytest
from localhttp import Quiet, local_http

from streamchat.errors import UsageError
from streamchat.exit_status import ExitStatus
from streamchat.schema import load_schema


class _Counting(Quiet):
    hits: list[str] = []

    def do_GET(self) -> None:  # a schema server: anything fetched from it is counted
        _Counting.hits.append(self.path)
        self.reply(200, b'{"type": "string"}', "application/json")


@pytest.fixture
def schema_server():
    _Counting.hits = []
    with local_http(_Counting) as url:
        yield url


def _with_ref(ref: str) -> str:
    return json.dumps({"type": "object", "properties": {"a": {"$ref": ref}}, "required": ["a"]})


def test_a_remote_ref_is_exit_2_nothing_sent_nothing_fetched(invoke, server, schema_server):
    server.script("fixed", chunks=['{"a": "x"}'])
    r = invoke("-m", "openai:fixed", "--schema", _with_ref(f"{schema_server}/s.json"), "q")
    assert r.code == ExitStatus.USAGE, r.stderr
    assert r.out == "" and not server.requests and not _Counting.hits
    assert r.stderr.startswith("error: --schema: $ref ") and len(r.stderr.splitlines()) == 1
    assert "does not resolve inside the schema" in r.stderr


@pytest.mark.parametrize("ref", ["#/nope", "#/$defs/missing", "file:///etc/passwd", "other.json"])
def test_an_unresolvable_ref_is_a_usage_error_not_an_internal_one(ref):
    with pytest.raises(UsageError) as caught:
        load_schema(_with_ref(ref))
    assert caught.value.exit_code == ExitStatus.USAGE and "\n" not in str(caught.value)


@pytest.mark.parametrize(("schema", "fits", "does_not"), [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/name"}}, "$defs": {"name": {"type": "string"}}},
     {"a": "x"}, {"a": 1}),
    ({"$id": "https://example.com/person", "type": "object", "properties": {"a": {"$ref": "person#/$defs/name"}},
      "$defs": {"name": {"type": "string"}}}, {"a": "x"}, {"a": 1}),
    ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
      "properties": {"a": {"$ref": "#/definitions/n"}}, "definitions": {"n": {"type": "integer"}}}, {"a": 1}, {"a": "x"}),
    ({"type": "object", "properties": {"s": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}},  # a metaschema
     {"s": {"type": "string"}}, {"s": {"type": 5}}),
    ({"type": "object", "properties": {"$ref": {"type": "string"}}}, {"$ref": "x"}, {"$ref": 1}),  # a property's name
    ({"type": "object", "properties": {"a": {"const": {"$ref": "http://example.com/x"}}}},  # data, not a reference
     {"a": {"$ref": "http://example.com/x"}}, {"a": 1}),
])
def test_local_refs_still_work_and_answers_are_checked_through_them(schema, fits, does_not, schema_server):
    loaded = load_schema(json.dumps(schema))
    assert loaded.check(json.dumps(fits)).ok
    assert not loaded.check(json.dumps(does_not)).ok


def test_checking_an_answer_never_fetches(schema_server):
    """Even a schema that skipped load_schema's check (built in code) is validated offline."""
    from streamchat.schema import Schema
    from streamchat.schema_request import ResponseSchema

    verdict = Schema(ResponseSchema(json.loads(_with_ref(f"{schema_server}/s.json")), "s")).check('{"a": "x"}')
    assert not verdict.ok and "does not resolve" in verdict.problems[0]
    assert not _Counting.hits


def _nested_schema(levels: int) -> str:
    schema = '{"type": "string"}'
    for _ in range(levels):
        schema = '{"type": "object", "properties": {"a": ' + schema + "}}"
    return schema


def test_a_deeply_nested_schema_is_a_usage_error_not_an_internal_one(invoke, server, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(_nested_schema(400))
    r = invoke("-m", "openai:echo", "--schema", str(path), "q")
    assert r.code == ExitStatus.USAGE, r.stderr
    assert "nested too deeply" in r.stderr and len(r.stderr.splitlines()) == 1 and not server.requests


@pytest.mark.parametrize("levels", [900, 5000, 100_000])
def test_an_answer_nested_too_deeply_is_repaired_then_exit_8_not_a_crash(invoke, server, levels):
    deep = '{"a": ' + "[" * levels + "]" * levels + "}"
    server.script("deep", chunks=[deep])
    r = invoke("-m", "openai:deep", "--schema", '{"type": "object"}', "q")
    assert r.code in (ExitStatus.OK, ExitStatus.SCHEMA), r.stderr
    assert "internal error" not in r.stderr
    if r.code == ExitStatus.SCHEMA:
        assert r.out == "" and len(server.requests) == 2  # one corrective request, as for any misfit
