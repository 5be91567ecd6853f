"""--schema's pure part: SCHEMA parsed from inline JSON, a file or the concise syntax; answers checked."""

from __future__ import annotations

import json

import pytest

from streamchat.errors import UsageError
from streamchat.exit_status import ExitStatus
from streamchat.schema import load_schema, parse_answer, repair_prompt


def test_concise_fields_types_and_descriptions():
    schema = load_schema("name, age int, score float, alive bool, bio: a one-line bio").schema
    assert schema == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "score": {"type": "number"},
                       "alive": {"type": "boolean"}, "bio": {"type": "string", "description": "a one-line bio"}},
        "required": ["name", "age", "score", "alive", "bio"],
        "additionalProperties": False,
    }


def test_concise_on_lines_lets_a_description_hold_commas():
    schema = load_schema("city\npop int: people, roughly\n\n").schema
    assert schema["properties"] == {"city": {"type": "string"},
                                    "pop": {"type": "integer", "description": "people, roughly"}}


@pytest.mark.parametrize(("spec", "says"), [
    ("city, pop itn", "unknown type 'itn' for field 'pop' — did you mean 'int'? types: str, int, float, bool"),
    ("city, pop int big", "cannot read the field 'pop int big'"),
    ("city, 2pop int", "'2pop' is not a field name"),
    ("city, city", "the field 'city' is given twice"),
    (" , ", "names no field"),
    ("", "is empty"),
])
def test_a_concise_typo_is_a_usage_error_naming_it(spec, says):
    with pytest.raises(UsageError) as caught:
        load_schema(spec)
    assert caught.value.exit_code == ExitStatus.USAGE
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_inline_json_and_a_file_give_the_same_schema(tmp_path):
    text = '{"title": "Order form", "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}'
    path = tmp_path / "order.json"
    path.write_text(text)
    inline, from_file = load_schema(text), load_schema(str(path))
    assert inline.schema == from_file.schema == json.loads(text)
    assert inline.request.name == from_file.request.name == "Order_form"  # the title, in the characters providers accept


def test_a_file_may_hold_the_concise_syntax_and_names_the_schema(tmp_path):
    path = tmp_path / "person.txt"
    path.write_text("name\nage int\n")
    loaded = load_schema(str(path))
    assert loaded.request.name == "person" and loaded.schema["required"] == ["name", "age"]


@pytest.mark.parametrize(("spec", "says"), [
    ('{"type": "object", "properties": {"a": {"type": "integr"}}}', "is not a valid JSON Schema: "),
    ('{"type": "object", "properties": {"a": {"type": "integr"}}}', "at $.properties.a.type"),
    ('{"type": "object", "properties": ', "is not valid JSON: Expecting"),
    ('{"type": "array", "items": {"type": "string"}}', 'must describe an object ("type": "object") at the top — for a list'),
    ("missing.json", "--schema missing.json: no such file"),
    ("./somewhere/else", "no such file"),
])
def test_a_bad_schema_or_file_is_one_line_naming_the_problem(spec, says):
    with pytest.raises(UsageError) as caught:
        load_schema(spec)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreadable_file_says_why(tmp_path):
    path = tmp_path / "s.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(UsageError, match="cannot read it"):
        load_schema(str(path))


def test_multi_wraps_a_list_of_items_and_keeps_references_working():
    schema = {"type": "object", "$defs": {"pop": {"type": "integer"}},
              "properties": {"city": {"type": "string"}, "pop": {"$ref": "#/$defs/pop"}}, "required": ["city", "pop"]}
    multi = load_schema(json.dumps(schema), multi=True)
    assert multi.schema["required"] == ["items"] and multi.schema["additionalProperties"] is False
    assert multi.check('{"items": [{"city": "Lima", "pop": 10}]}').data == {"items": [{"city": "Lima", "pop": 10}]}
    assert multi.check('{"items": [{"city": "Lima", "pop": "many"}]}').problems[0] == \
        "items[0].pop: 'many' is not of type 'integer'"


def test_an_answer_that_fits_is_its_data():
    schema = load_schema("city, pop int")
    assert schema.check('{"city": "Lima", "pop": 10000000}').data == {"city": "Lima", "pop": 10000000}
    assert schema.check('```json\n{"city": "Lima", "pop": 1}\n```').ok  # a fence around it
    assert schema.check('Here it is: {"city": "Lima", "pop": 1} — enjoy').ok  # prose around it


@pytest.mark.parametrize(("answer", "first"), [
    ('{"city": "Lima"}', "top level: 'pop' is a required property"),
    ('{"city": "Lima", "pop": "ten"}', "pop: 'ten' is not of type 'integer'"),
    ('{"city": "Lima", "pop": 1, "x": 2}', "top level: Additional properties are not allowed ('x' was unexpected)"),
    ('{"city": "Lima", "pop": ', "the answer is not JSON: Expecting value at line 1 column 24"),
    ("Lima has ten million people", "the answer is not JSON: Expecting value at line 1 column 1"),
])
def test_an_answer_that_does_not_fit_names_the_property_and_why(answer, first):
    verdict = load_schema("city, pop int").check(answer)
    assert not verdict.ok and verdict.problems[0] == first


def test_a_long_value_in_a_problem_is_cut_to_one_short_line():
    verdict = load_schema("a int").check(json.dumps({"a": "x" * 1000}))
    assert len(verdict.problems[0]) <= 170 and verdict.problems[0].endswith("…")


def test_the_corrective_request_shows_the_problems():
    prompt = repair_prompt(("top level: 'pop' is a required property",))
    assert "- top level: 'pop' is a required property" in prompt and "only the corrected JSON" in prompt


def test_parse_answer_raises_for_two_documents_only_when_no_object_leads():
    assert parse_answer('{"a": 1}\n') == {"a": 1}
    with pytest.raises(ValueError):
        parse_answer("[1, 2")


def test_a_role_takes_a_schema_as_text_or_as_a_table():
    from streamchat.errors import ConfigError
    from streamchat.roles import _from_table

    text = _from_table("census", {"schema": "city, pop int"}, "roles/census.toml")
    table = _from_table("order", {"schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}, "config")
    assert text.response_schema().schema["required"] == ["city", "pop"]
    assert table.response_schema(multi=True).schema["properties"]["items"]["items"]["properties"] == {"id": {"type": "integer"}}
    with pytest.raises(ConfigError, match="'schema' must be a string"):
        _from_table("bad", {"schema": 3}, "config")
    with pytest.raises(UsageError, match="role 'typo': schema: unknown type"):
        _from_table("typo", {"schema": "pop itn"}, "config").response_schema()


def _live(events_per_attempt, verdicts):
    """Feed attempts into LiveJson on an emulated 40×10 terminal; what was written, and the screen."""
    from terminal_emulator import Terminal, tty_env

    from streamchat.events import Done, TextDelta, TurnResult
    from streamchat.sinks.data import LiveJson
    from streamchat.ui import UI

    env, out, _err = tty_env()
    live = LiveJson(env, UI(env), size=lambda: (40, 10))
    for pieces, verdict in zip(events_per_attempt, verdicts, strict=True):
        sink = live.sink()
        sink.begin()
        for piece in pieces:
            sink.feed(TextDelta(piece))
        sink.feed(Done("stop"))
        sink.end(TurnResult("".join(pieces), finish_reason="stop"))
        live.accept(verdict) if verdict is not None else live.reject()
    term = Terminal(40, 10)
    term.feed(out.getvalue())
    return out.getvalue(), term.lines()


def test_on_a_terminal_the_json_streams_dim_and_only_the_validated_document_stays():
    written, screen = _live([['{"city": "Li', 'ma"}'], ['{"city": "Lima",', ' "pop": 1}']],
                            [None, {"city": "Lima", "pop": 1}])
    assert '\x1b[2m{"city": "Li' in written  # streamed as it came, dim
    assert screen == ["{", '  "city": "Lima",', '  "pop": 1', "}"]  # the rejected attempt is gone


def test_on_a_terminal_a_long_answer_streams_in_a_window_and_is_then_printed_whole():
    pieces = ['{"items": [' + ", ".join(f'"item number {i}"' for i in range(30)) + "]}"]
    _written, screen = _live([pieces], [{"items": [f"item number {i}" for i in range(30)]}])
    assert screen[0] == "{" and screen[-1] == "}" and len(screen) == 34


def test_a_bare_word_is_a_field_even_when_a_file_has_that_name(tmp_path, monkeypatch):
    """QA-1: `--schema city` read a file named `city` from the working directory (its content parsed
    as the schema: a JSON one silently asked for other fields). A file is read when SCHEMA looks like a
    path — it holds a `/`, starts with `~` or ends in `.json` — as README's examples write one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "city").write_text("hello world\n")
    (tmp_path / "name").write_text('{"type":"object","properties":{"evil":{"type":"string"}},"required":["evil"]}')
    (tmp_path / "name.json").write_text((tmp_path / "name").read_text())
    (tmp_path / "folder").mkdir()
    assert load_schema("city").schema["required"] == ["city"]
    assert load_schema("name").schema["required"] == ["name"]
    assert load_schema("folder").schema["required"] == ["folder"]
    assert load_schema("./name").schema["required"] == ["evil"]
    assert load_schema("name.json").schema["required"] == ["evil"]
    with pytest.raises(UsageError) as caught:
        load_schema("city.txt")  # not a field name, and not read as a file: say how to give one
    assert "./city.txt" in caught.value.hint


@pytest.mark.parametrize("name", ["-", "--", "-a", "1a", "é", "prénom"])
def test_a_refused_field_name_is_told_the_rule_it_broke(name):
    """QA-24: the hint said "use letters, digits, _ and -" for `-`, `1a` and `prénom`, each made of
    exactly those; it now states the rule FIELD_NAME applies, and what it accepts still passes."""
    with pytest.raises(UsageError) as caught:
        load_schema(f"city, {name} int")
    assert caught.value.hint is not None
    assert "start with an ASCII letter or _" in caught.value.hint and "ASCII letters, digits, _ and -" in caught.value.hint
    for fine in ("a-b", "_", "_1", "Z9-x"):
        assert fine in load_schema(f"city, {fine} int").schema["properties"]
