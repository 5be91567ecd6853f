"""--schema end to end: the real CLI, through the real SDKs, against the fake server (#30)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import PROVIDERS, base_env

from streamchat.exit_status import ExitStatus

CITY = "city, pop int"


def logged(home) -> list[tuple[str, str]]:
    db = sqlite3.connect(home / "log.db")
    try:
        return db.execute("SELECT role, content FROM messages ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_schema_prints_one_compact_json_object_in_a_pipe(invoke, server, provider):
    server.script("peru", chunks=['{"city": "Li', 'ma", "pop"', ": 9700000}"])
    r = invoke("-m", f"{provider}:peru", "--schema", CITY, "largest city of Peru")
    assert r.code == 0, r.stderr
    assert r.out == '{"city":"Lima","pop":9700000}\n' and r.stderr == ""
    assert len(server.requests) == 1


def test_json_adds_a_data_event_with_the_parsed_object(invoke, server):
    server.script("peru", chunks=['{"city": "Lima", "pop": 9700000}'])
    r = invoke("-m", "openai:peru", "--schema", CITY, "--json", "--stats", "largest city of Peru")
    events = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and [e["type"] for e in events] == ["text", "usage", "done", "data"]
    assert r.stderr == ""  # the stats are in the done event, as --json has them without --schema
    assert events[-1]["data"] == {"city": "Lima", "pop": 9700000}


def test_multi_asks_for_a_list_of_items(invoke, server):
    server.script("cities", chunks=['{"items": [{"city": "Lima", "pop": 1}, {"city": "Cusco", "pop": 2}]}'])
    r = invoke("-m", "openai:cities", "--schema", CITY, "--schema-multi", "two cities of Peru")
    assert r.code == 0, r.stderr
    assert json.loads(r.out) == {"items": [{"city": "Lima", "pop": 1}, {"city": "Cusco", "pop": 2}]}


def test_stats_go_to_stderr_after_the_data(invoke, server):
    server.script("peru", chunks=['{"city": "Lima", "pop": 1}'])
    r = invoke("-m", "openai:peru", "--schema", CITY, "--stats", "q")
    assert r.code == 0 and r.out == '{"city":"Lima","pop":1}\n' and "tok/s" in r.stderr


def test_still_invalid_after_one_repair_is_exit_8_one_line_and_empty_stdout(invoke, server, home):
    server.script("stubborn", chunks=['{"city": "Lima"}'])
    r = invoke("-m", "anthropic:stubborn", "--schema", CITY, "largest city of Peru")
    assert r.code == ExitStatus.SCHEMA == 8
    assert r.out == ""
    assert r.stderr == ("error: the answer does not fit the schema after a corrective request: "
                        "top level: 'pop' is a required property\n")
    assert len(server.requests) == 2  # the question, then one corrective request, no more
    corrective = server.requests[1].body["messages"][-1]["content"]
    text = corrective if isinstance(corrective, str) else corrective[0]["text"]
    assert "'pop' is a required property" in text
    assert [role for role, _ in logged(home)] == ["user", "assistant", "user", "assistant"]  # both attempts


def test_an_answer_cut_off_at_the_token_limit_is_not_retried(invoke, server):
    server.script("long", chunks=['{"city": "Li'], finish_reason="length")
    r = invoke("-m", "openai:long", "--schema", CITY, "--max-tokens", "5", "q")
    assert (r.code, r.out, len(server.requests)) == (8, "", 1)  # the same limit would cut a retry too
    assert r.stderr == ("error: the answer does not fit the schema: the answer was cut off at the token limit "
                        "(1 tokens) before its JSON ended — raise --max-tokens\n")


def test_json_reports_the_failure_as_an_error_event(invoke, server):
    server.script("stubborn", chunks=["Lima, about ten million"])
    r = invoke("-m", "openai:stubborn", "--schema", CITY, "--json", "largest city of Peru")
    last = json.loads(r.out.splitlines()[-1])
    assert r.code == 8 and last["type"] == "error" and last["code"] == "schema" and last["exit_code"] == 8
    assert last["message"].endswith("the answer is not JSON: Expecting value at line 1 column 1")


@pytest.mark.parametrize(("schema", "says"), [
    ("city, pop itn", "error: --schema: unknown type 'itn' for field 'pop' — did you mean 'int'?"),
    ('{"type": "object", "properties": {"pop": {"type": "integr"}}}', "error: --schema is not a valid JSON Schema: "),
    ("cities.json", "error: --schema cities.json: no such file"),
])
def test_a_bad_schema_is_exit_2_with_one_line_and_nothing_sent(invoke, server, schema, says):
    r = invoke("-m", "openai:echo", "--schema", schema, "q")
    assert r.code == 2 and r.out == "" and not server.requests
    assert r.stderr.startswith(says) and len(r.stderr.splitlines()) == 1


def test_schema_and_extract_both_decide_stdout(invoke, server):
    r = invoke("-m", "openai:echo", "--schema", CITY, "-x", "q")
    assert r.code == 2 and "-x/--extract-all and --schema each decide what stdout holds" in r.stderr


def test_a_roles_schema_applies_and_the_flag_wins(invoke, server, home):
    (home / "config" / "streamchat" / "roles").mkdir(parents=True)
    (home / "config" / "streamchat" / "roles" / "census.toml").write_text('schema = "city, pop int"\n')
    server.script("peru", chunks=['{"city": "Lima", "pop": 1}'])
    assert invoke("-m", "openai:peru", "-r", "census", "q").out == '{"city":"Lima","pop":1}\n'
    r = invoke("-m", "openai:peru", "-r", "census", "--schema", "city", "q")
    assert r.code == 8 and "Additional properties are not allowed ('pop' was unexpected)" in r.stderr


def test_repl_schema_asks_for_checked_json_until_off(home, server):
    import pexpect
    from test_repl import PROMPT, screen_of, spawn

    server.script("peru", chunks=['{"city": "Li', 'ma", "pop": 1}'])
    child = spawn(home, server, "-m", "openai:peru")
    try:
        child.sendline("/schema city, pop itn")
        child.expect_exact("unknown type 'itn' for field 'pop'")  # one line; nothing sent, the REPL goes on
        child.expect_exact(PROMPT)
        child.sendline("/schema city, pop int")
        child.expect_exact('schema: {"type": "object", "properties": {"city"')
        child.expect_exact(PROMPT)
        child.sendline("largest city of Peru")
        child.expect_exact('"pop": 1')
        child.expect_exact(PROMPT)
        screen = [line.rstrip() for line in screen_of(child)]
        start = screen.index("{")
        assert screen[start : start + 4] == ["{", '  "city": "Lima",', '  "pop": 1', "}"]
        assert not any('{"city": "Lima"' in line for line in screen)  # the dim stream was repainted, not left
        child.sendline("/schema off")
        child.expect_exact("schema: off")
        server.script("peru", chunks=["Lima, of course."])
        child.sendline("and in prose?")
        child.expect_exact("Lima, of course.")
        child.expect_exact(PROMPT)
        assert len(server.requests) == 2
    finally:
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()



def test_extract_and_shell_set_a_roles_schema_aside(invoke, server, home):
    (home / "config" / "streamchat" / "roles").mkdir(parents=True)
    (home / "config" / "streamchat" / "roles" / "census.toml").write_text('schema = "city, pop int"\n')
    server.script("code", chunks=["```sh\necho hi\n```\n"])
    r = invoke("-m", "openai:code", "-r", "census", "-x", "a command")
    assert r.code == 0 and r.out == "echo hi\n", r.stderr
    assert "response_format" not in server.requests[0].body  # asked for the code, not for JSON

def test_save_role_keeps_the_schema(invoke, server, home):
    saved = invoke("--save-role", "census", "--schema", CITY, "--schema-multi")
    assert saved.code == 0 and not server.requests, saved.stderr
    server.script("cities", chunks=['{"items": [{"city": "Lima", "pop": 1}]}'])
    r = invoke("-m", "openai:cities", "-r", "census", "two cities")
    assert r.code == 0 and r.out == '{"items":[{"city":"Lima","pop":1}]}\n', r.stderr

# -- the provider asked for the schema: model "echo" answers an instance of it (tests/fakeserver.py) --

def _said_last(body) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_request_carries_the_schema_and_one_valid_object_is_printed(invoke, server, provider):
    r = invoke("-m", f"{provider}:echo", "--schema", CITY, "largest city of Peru")
    assert r.code == 0, r.stderr
    assert r.out == '{"city":"city","pop":0}\n' and r.stderr == ""
    body = server.requests[0].body
    asked = body.get("response_format", {}).get("json_schema", {}).get("schema") or body["tools"][0].get(
        "input_schema") or body["tools"][0]["function"]["parameters"]
    assert asked["required"] == ["city", "pop"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_missing_a_property_is_repaired_with_one_more_request(invoke, server, home, provider):
    r = invoke("-m", f"{provider}:echo", "--schema", CITY, "largest city of Peru [schema:missing-once]")
    assert r.code == 0, r.stderr
    assert r.out == '{"city":"city","pop":0}\n' and r.stderr == ""
    assert len(server.requests) == 2
    assert "- top level: 'city' is a required property" in _said_last(server.requests[1].body)
    answers = [content for role, content in logged(home) if role == "assistant"]
    assert [json.loads(a) for a in answers] == [{"pop": 0}, {"city": "city", "pop": 0}]  # the log keeps both


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_still_missing_it_is_exit_8_with_one_line(invoke, server, provider):
    r = invoke("-m", f"{provider}:echo", "--schema", CITY, "largest city of Peru [schema:missing-always]")
    assert (r.code, r.out, len(server.requests)) == (8, "", 2)
    assert r.stderr == ("error: the answer does not fit the schema after a corrective request: "
                        "top level: 'city' is a required property\n")


def test_invalid_json_is_repaired_too(invoke, server):
    r = invoke("-m", "openai:echo", "--schema", CITY, "--json", "largest city of Peru [schema:bad-json-once]")
    events = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and [e["type"] for e in events].count("done") == 2
    assert events[-1] == {"type": "data", "data": {"city": "city", "pop": 0}}
    assert "- the answer is not JSON: " in _said_last(server.requests[1].body)


def test_the_embedded_model_answers_valid_json_offline(run, home):
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    r = run("-m", "local", "--schema", CITY, "largest city of Peru", env=base_env(home))  # no server, no key
    assert r.code == 0, r.stderr
    data = json.loads(r.out)
    assert set(data) == {"city", "pop"} and isinstance(data["pop"], int) and r.out.count("\n") == 1
