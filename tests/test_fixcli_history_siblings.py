"""QA-6: `history show` listed a question that failed as "Assistant 1 of N" of the *next* question,
"To the question asked before /edit last" — and so with concurrent one-shots on one session. A
failed (or side) question stays where it was asked; the /edit wording is for real edits only."""

from __future__ import annotations

from streamchat.conversation import Conversation, Turn
from streamchat.events import Outcome, TurnResult
from streamchat.store import ConversationLog, connect


def test_a_failed_question_is_shown_where_it_was_asked_not_as_an_answer_to_the_next(invoke, server):
    server.script("e400", status=400, error_message="bad request here")
    assert invoke("-m", "openai:echo", "-S", "alt1", "first").code == 0
    assert invoke("-m", "openai:e400", "-S", "alt1", "second (fails)").code != 0
    assert invoke("-m", "openai:echo", "-S", "alt1", "third").code == 0
    shown = invoke("history", "show", "alt1").out
    assert "/edit last" not in shown and "of 2" not in shown, shown
    assert shown.index("## User\n\nfirst") < shown.index("## User\n\nsecond (fails)") < shown.index("## User\n\nthird"), shown
    assert "bad request here" in shown
    assert shown.index("bad request here") < shown.index("## User\n\nthird"), shown
    picked = invoke("pick", "1", "--cid", "alt1")
    assert picked.code == 2 and "one answer" in picked.stderr, picked.stderr  # nothing to pick: "third" has one answer


def _log(tmp_path):
    return ConversationLog(connect(tmp_path / "log.db"), warn=print)


def _ok(text: str) -> TurnResult:
    return TurnResult(text)


def test_siblings_asked_at_once_are_their_own_questions_and_an_edit_is_an_edit(tmp_path):
    log = _log(tmp_path)
    conv = Conversation()
    first = log.record(conv, "openai", "echo", "one", _ok("echo: one"))
    conv.add(Turn("one", _ok("echo: one"), first, "openai:echo"))
    # two processes continuing the same conversation at once (-S conc "msg 2" & -S conc "msg 3" &)
    other = Conversation(id=conv.id, turns=list(conv.turns))
    log.record(other, "openai", "echo", "msg 2", _ok("echo: msg 2"))
    third = log.record(conv, "openai", "echo", "msg 3", _ok("echo: msg 3"))
    conv.add(Turn("msg 3", _ok("echo: msg 3"), third, "openai:echo"))
    last = conv.last
    assert last is not None and [t.prompt for t in log.alternatives(conv, last)] == ["msg 3"]
    assert log.switch(conv, None) is None  # /alt: "msg 2" is no answer to "msg 3"
    # /edit last: the edited question's answers are alternatives of one another
    conv.edit_last()
    edited = log.record(conv, "openai", "echo", "msg 3, edited", _ok("echo: msg 3, edited"))
    conv.add(Turn("msg 3, edited", _ok("echo: msg 3, edited"), edited, "openai:echo"))
    last = conv.last
    assert last is not None and [t.prompt for t in log.alternatives(conv, last)] == ["msg 3", "msg 3, edited"]
    answers = {t.id: log.alternatives(conv, t) for t in conv.turns if t.id is not None}
    others = {t.id: log.others(conv, t) for t in conv.turns if t.id is not None}
    shown = conv.transcript("t", answers, others)
    assert shown.count("before /edit last") == 1 and "> msg 3\n" in shown, shown
    assert "## User\n\nmsg 2" in shown and "echo: msg 2" in shown, shown
    assert shown.index("msg 2") < shown.index("## User\n\nmsg 3, edited"), shown


def test_a_failed_question_then_another_keeps_both_in_order(tmp_path):
    log = _log(tmp_path)
    conv = Conversation()
    a = log.record(conv, "openai", "echo", "one", _ok("echo: one"))
    conv.add(Turn("one", _ok("echo: one"), a, "openai:echo"))
    failed = TurnResult("", outcome=Outcome.FAILED)
    b = log.record(conv, "openai", "e400", "two", failed)
    conv.add(Turn("two", failed, b, "openai:e400"))
    c = log.record(conv, "openai", "echo", "three", _ok("echo: three"))
    conv.add(Turn("three", _ok("echo: three"), c, "openai:echo"))
    loaded = log.load(conv.id or 0)
    assert [t.prompt for t in loaded.turns] == ["one", "three"]
    assert [t.prompt for t in log.others(loaded, loaded.turns[1])] == ["two"]
    assert [t.prompt for t in log.alternatives(loaded, loaded.turns[1])] == ["three"]
