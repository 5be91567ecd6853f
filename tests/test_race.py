"""Races (#33): several models answer one question at once — the layout, the live view, pipes,
--json, the log's alternatives, `pick`, Ctrl-C, and the CLI end to end against two fake upstreams."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import time

import pexpect
import pyte
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import FakeLLMServer
from terminal_emulator import ANSI, FakeTTY, plain
from test_repl import PROMPT
from test_repl import repl as repl  # the REPL fixture (it ends each REPL cleanly)

from streamchat.environment import Environment
from streamchat.events import Outcome, Stats, TextDelta, TurnResult
from streamchat.render import lanes

FAST = ["# Fast\n\n", "Fast answer line one.\n\n", "- fast item\n", "- fast end\n"]
SLOW = ["Slow ", "answer ", "starts here.\n\n", "Slow middle.\n\n", "Slow end.\n"]


# -- the layout (pure) -------------------------------------------------------------------------
def test_wide_terminals_put_answers_side_by_side_narrow_ones_stack_them():
    assert lanes.side_by_side(160, 2) and lanes.pane_width(160, 2) == 78
    assert lanes.side_by_side(100, 3) and lanes.pane_width(100, 3) == 31
    assert not lanes.side_by_side(99, 2) and lanes.pane_width(80, 2) == 80
    assert not lanes.side_by_side(100, 4)  # 22 columns each would be too narrow: stacked
    assert not lanes.side_by_side(200, 1)


def test_columns_show_each_answers_newest_lines_and_fit_the_height():
    panes = [lanes.Pane("A", [f"a{i}" for i in range(30)], ["stats a"]),
             lanes.Pane("B", ["b0", "b1"], ["stats b", "more b"])]
    live = [ANSI.sub("", line).rstrip() for line in lanes.compose(panes, 120, 10)]
    assert len(live) == 10
    assert live[0].startswith("A") and "│ B" in live[0]
    assert live[1].startswith("a23") and "│ b0" in live[1]  # A's tail, B from its top
    assert live[7].startswith("a29")
    assert live[8].startswith("stats a") and live[8].endswith("│ stats b")
    assert live[9].endswith("│ more b")
    final = plain(lanes.compose(panes, 120))
    assert [row.split("│")[0].strip() for row in final[1:31]] == [f"a{i}" for i in range(30)]
    widths = {lanes.cells(row) for row in lanes.compose(panes, 120, 10)}
    assert max(widths) <= 120


def test_stacked_panes_share_the_height_and_short_answers_leave_room_to_long_ones():
    assert lanes.share([2, 50], 12) == [2, 10]
    assert lanes.share([50, 50], 12) == [6, 6]
    assert lanes.share([3, 4], 20) == [3, 4]
    assert lanes.share([0, 9, 9], 5) == [0, 3, 2]
    panes = [lanes.Pane("A", [f"a{i}" for i in range(20)], ["fa"]), lanes.Pane("B", [f"b{i}" for i in range(20)], ["fb"])]
    live = plain(lanes.compose(panes, 80, 12))
    assert len(live) == 12
    assert live == ["A", "a16", "a17", "a18", "a19", "fa", "B", "b16", "b17", "b18", "b19", "fb"]
    final = plain(lanes.compose(panes, 80))
    assert final == ["A", *[f"a{i}" for i in range(20)], "fa", "", "B", *[f"b{i}" for i in range(20)], "fb"]


def test_footers_break_between_figures_not_inside_them():
    parts = ["TTFT 136 ms", "22 tokens", "27.8 tok/s", "total 0.93 s", "cost $0.0000"]
    assert lanes.pack(parts, 59) == ["TTFT 136 ms · 22 tokens · 27.8 tok/s · total 0.93 s", "cost $0.0000"]
    assert lanes.pack(parts, 200) == [" · ".join(parts)]
    assert lanes.pack(["a" * 12], 5) == ["aaaaa", "aaaaa", "aa"]


def test_headers_name_the_model_and_fit_the_pane():
    assert plain([lanes.header("openai:gpt-4o-mini", 30)]) == ["openai:gpt-4o-mini " + "─" * 11]
    assert lanes.cells(lanes.header("x" * 50, 20)) <= 20


# -- the live view in an in-memory terminal ----------------------------------------------------
class Screen:
    """pyte fed with what the view wrote (a real terminal's output, \\n as the tty's ONLCR makes it)."""

    def __init__(self, width: int, height: int) -> None:
        self.screen = pyte.HistoryScreen(width, height, history=10000)
        self.stream = pyte.Stream(self.screen)
        self.seen = 0

    def feed(self, out: FakeTTY) -> None:
        data = out.getvalue()
        self.stream.feed(data[self.seen:].replace("\n", "\r\n"))
        self.seen = len(data)

    def display(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def everything(self) -> list[str]:
        rows = ["".join(line[x].data for x in sorted(line)).rstrip() for line in self.screen.history.top]
        rows += self.display()
        while rows and not rows[-1]:
            rows.pop()
        return rows


def _view(width: int, height: int, names: list[str], **environ: str):
    from streamchat.sinks.race import RaceView

    out = FakeTTY()
    env = Environment(stdin=None, stdout=out, stderr=FakeTTY(), environ={"TERM": "xterm-256color", **environ})
    clock = [0.0]
    view = RaceView(env, names, size=lambda: (width, height), timer=False, clock=lambda: clock[0])
    return view, out, clock


def _stream(view, index: int, chunks: list[str]) -> None:
    sink = view.sink(index)
    sink.begin()
    for chunk in chunks:
        sink.feed(TextDelta(chunk))


@pytest.mark.parametrize("width,height", [(160, 40), (80, 24), (100, 12)])
def test_view_shows_both_answers_live_and_scrollback_holds_each_once(width, height):
    long_fast = FAST + [f"Fast line {i}.\n\n" for i in range(30)]
    view, out, _clock = _view(width, height, ["openai:fast", "anthropic:slow"])
    screen = Screen(width, height)
    _stream(view, 0, long_fast)
    _stream(view, 1, SLOW[:2])
    view.flush()
    screen.feed(out)
    shown = "\n".join(screen.display())
    assert "Fast line 29." in shown and "Slow answer" in shown  # both in view at once
    assert "openai:fast" in shown and "anthropic:slow" in shown
    view.sink(0).end(TurnResult("".join(long_fast), stats=Stats(ttft_ms=120, total_ms=900, tokens=34)))
    for chunk in SLOW[2:]:
        view.sink(1).feed(TextDelta(chunk))
    view.flush()
    view.sink(1).end(TurnResult("".join(SLOW), stats=Stats(ttft_ms=300, total_ms=2000, tokens=5, cost_usd=0.0012)))
    view.close()
    screen.feed(out)
    rows = screen.everything()
    text = "\n".join(rows)
    for line in ["Fast answer line one.", "Slow answer starts here.", "Slow middle.", "Slow end.", "fast end",
                 *[f"Fast line {i}." for i in range(30)]]:
        assert len(re.findall(re.escape(line) + r"(?!\d)", text)) == 1, (line, rows)
    assert text.count("openai:fast") == 1 and text.count("anthropic:slow") == 1
    assert "TTFT 120 ms" in text and "TTFT 300 ms" in text and "$0.0012" in text
    assert out.getvalue().endswith("\x1b[?25h")  # the cursor is shown again


def test_view_sanitizes_model_text_and_shows_a_failure_in_its_own_pane():
    from streamchat.errors import ServerError

    view, out, _clock = _view(160, 20, ["a", "b"])
    _stream(view, 0, ["evil \x1b]0;pwned\x07 \x1b[2J text\n"])
    view.sink(0).end(TurnResult("x"))
    view.sink(1).begin()
    view.sink(1).end(TurnResult(outcome=Outcome.FAILED, error=ServerError("b server error (HTTP 503)")))
    view.close()
    written = out.getvalue()
    assert "\x1b]0;" not in written and "\x1b[2J" not in written and "␛" in written
    screen = Screen(160, 20)
    screen.feed(out)
    rows = screen.everything()
    failing = [row for row in rows if "error:" in row]
    assert len(failing) == 1 and failing[0].split("│")[1].strip() == "error: b server error (HTTP 503)"


def test_no_color_keeps_the_layout_without_colors():
    view, out, _clock = _view(160, 20, ["a", "b"], NO_COLOR="1")
    _stream(view, 0, ["**bold** and `code`\n\n```python\nx = 1\n```\n"])
    view.sink(0).end(TurnResult("x"))
    view.sink(1).begin()
    from streamchat.errors import ServerError

    view.sink(1).end(TurnResult(outcome=Outcome.FAILED, error=ServerError("nope")))
    view.close()
    colors = [m for m in re.findall(r"\x1b\[([0-9;]*)m", out.getvalue()) if re.search(r"(^|;)(3\d|4\d|9\d|10\d)(;|$)", m)]
    assert colors == []
    assert "\x1b[1m" in out.getvalue()  # the answer's own **bold** stays, as a single answer's does


@pytest.mark.parametrize("width", [160, 80])  # columns (the gap between them) and stacked panes
def test_no_color_leaves_the_views_own_lines_unstyled(width):
    """NO_COLOR: the headers, rules, gap and footers (stats, waiting clock, error) carry no SGR at all —
    the rule stderr's notices follow (Environment.stdout_styled), not only no colors."""
    from streamchat.errors import ServerError

    view, out, _clock = _view(width, 20, ["a", "b"], NO_COLOR="1")
    _stream(view, 0, ["plain words\n"])
    view.sink(1).begin()
    view.flush()  # live: a's text, b's clock
    view.sink(0).end(TurnResult("plain words", stats=Stats(0.1, 0.2, 3)))
    view.sink(1).end(TurnResult(outcome=Outcome.FAILED, error=ServerError("nope")))
    view.close()
    assert re.findall(r"\x1b\[[0-9;]*m", out.getvalue()) == []
    screen = Screen(width, 20)
    screen.feed(out)
    assert any(row.startswith("a ───") for row in screen.everything())
    assert any("error: nope" in row for row in screen.everything())
    styled, out, _clock = _view(width, 20, ["a", "b"])  # without NO_COLOR: bold names, dim rules
    _stream(styled, 0, ["plain words\n"])
    styled.sink(0).end(TurnResult("plain words"))
    styled.sink(1).end(TurnResult("x"))
    styled.close()
    assert "\x1b[1ma\x1b[0m \x1b[2m───" in out.getvalue()


def test_no_color_leaves_the_interrupted_mark_unstyled():
    from streamchat.sinks.terminal import MarkdownSink
    from streamchat.ui import UI

    for environ, mark in (({"NO_COLOR": "1"}, "\x1b[?2026h[interrupted]"), ({}, "\x1b[2m[interrupted]")):
        out = FakeTTY()
        env = Environment(stdin=None, stdout=out, stderr=FakeTTY(), environ={"TERM": "xterm-256color", **environ})
        sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False)
        sink.begin()
        sink.feed(TextDelta("partial"))
        sink.end(TurnResult(outcome=Outcome.INTERRUPTED))
        assert mark in out.getvalue(), repr(out.getvalue())


def test_a_waiting_pane_shows_its_clock():
    view, out, clock = _view(160, 20, ["a", "b"])
    view.sink(0).begin()
    view.sink(1).begin()
    clock[0] = 1.25
    view.flush()
    screen = Screen(160, 20)
    screen.feed(out)
    assert any("waiting 1.2 s" in row for row in screen.display())


# -- pipes: each answer whole, in -m order -----------------------------------------------------
def test_pipe_writes_each_answer_whole_in_order_as_soon_as_it_is_next():
    from streamchat.sinks.race import InOrder
    from streamchat.ui import UI

    out = FakeTTY()
    out.isatty = lambda: False  # type: ignore[method-assign]
    env = Environment(stdin=None, stdout=out, stderr=FakeTTY(), environ={})
    ordered = InOrder(env, UI(env), ["m:a", "m:b", "m:c"])
    a, b, c = (ordered.sink(i) for i in range(3))
    for sink in (a, b, c):
        sink.begin()
    b.feed(TextDelta("b1 "))
    c.feed(TextDelta("c1"))
    c.end(TurnResult("c1"))
    assert out.getvalue() == "## m:a\n"  # b and c wait for a
    a.feed(TextDelta("a1"))
    assert out.getvalue() == "## m:a\na1"  # a streams at once
    a.end(TurnResult("a1"))
    assert out.getvalue() == "## m:a\na1\n\n## m:b\nb1 "  # b's held text, then b streams
    b.feed(TextDelta("b2"))
    b.end(TurnResult("b1 b2"))
    ordered.close()
    assert out.getvalue() == "## m:a\na1\n\n## m:b\nb1 b2\n\n## m:c\nc1\n"


# -- end to end: two fake upstreams --------------------------------------------------------------
@pytest.fixture
def second_server():
    other = FakeLLMServer().start()
    yield other
    other.stop()


def race_env(home, server, second_server, **extra: str) -> dict[str, str]:
    """openai:* on one fake upstream, anthropic:* on the other."""
    return base_env(home, server, ANTHROPIC_BASE_URL=second_server.url, **extra)


def _answers(rows: list[str]) -> str:
    return "\n".join(rows)


@pytest.mark.e2e
@pytest.mark.parametrize("rows,cols", [(40, 160), (24, 80)])
def test_terminal_race_both_answers_live_then_each_once_in_scrollback(home, server, second_server, rows, cols):
    import threading

    gate = threading.Event()
    server.script("fast", chunks=FAST, delay=0.02)
    second_server.script("slow", chunks=SLOW, gate=gate)  # its first words, then it waits for the test
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:fast", "-m", "anthropic:slow", "--no-log", "compare"],
                          env=race_env(home, server, second_server), encoding="utf-8", dimensions=(rows, cols),
                          timeout=90)
    screen = pyte.HistoryScreen(cols, rows, history=10000)
    stream = pyte.Stream(screen)

    def pump(until, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with contextlib.suppress(pexpect.TIMEOUT):
                stream.feed(child.read_nonblocking(100000, timeout=0.1))
            if until():
                return
        raise AssertionError("\n".join(line.rstrip() for line in screen.display))

    try:
        shown = lambda: "\n".join(screen.display)  # noqa: E731
        pump(lambda: "fast end" in shown() and "Slow" in shown())  # both on screen at once, mid-race
        assert "openai:fast" in shown() and "anthropic:slow" in shown()
        gate.set()
        pump(lambda: not child.isalive() or "Slow end." in shown())
        child.expect(pexpect.EOF)
        stream.feed(child.before or "")
    finally:
        gate.set()
        child.close()
    assert child.exitstatus == 0
    history = ["".join(line[x].data for x in sorted(line)).rstrip() for line in screen.history.top]
    text = "\n".join(history + [line.rstrip() for line in screen.display])
    for line in ["Fast answer line one.", "fast item", "fast end", "Slow answer starts here.", "Slow middle.", "Slow end."]:
        assert text.count(line) == 1, (line, text)
    assert text.count("TTFT") == 2


@pytest.mark.e2e
def test_pipe_race_streams_at_once_and_writes_each_answer_whole_in_order(home, server, second_server):
    """The models stream at the same time: the first waits (gated) until the second has finished,
    which a race run one model after the other would never reach."""
    import threading

    gate = threading.Event()
    server.script("slowa", chunks=[f"a{i} " for i in range(10)], gate=gate)
    second_server.script("slowb", chunks=[f"b{i} " for i in range(10)], delay=0.01)
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:slowa", "-m", "anthropic:slowb", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=race_env(home, server, second_server))
    try:
        deadline = time.monotonic() + 60
        while second_server.completed < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second_server.completed == 1 and server.completed == 0
        gate.set()
        out, err = proc.communicate(timeout=60)
    finally:
        gate.set()
        proc.kill()
    assert proc.returncode == 0, err
    assert out.decode() == "## openai:slowa\n" + "".join(f"a{i} " for i in range(10)) + "\n\n## anthropic:slowb\n" \
        + "".join(f"b{i} " for i in range(10)) + "\n"


@pytest.mark.e2e
def test_a_failing_model_does_not_stop_the_other_and_its_code_is_the_exit(invoke, home, server, second_server):
    server.script("good", chunks=["fine ", "answer"], delay=0.05)
    second_server.script("bad", status=503, error_message="down for maintenance")
    r = invoke("-m", "anthropic:bad", "-m", "openai:good", "--no-retry", "q", env=race_env(home, server, second_server))
    assert r.code == 5, r.stderr
    assert "## openai:good\nfine answer\n" in r.out
    assert re.search(r"error: anthropic:bad: .*503", r.stderr), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.e2e
def test_json_events_carry_model_and_index_with_one_end_each(invoke, home, server, second_server):
    server.script("ja", chunks=["x", "y"])
    second_server.script("jb", status=400, error_message="bad thing")
    r = invoke("-m", "openai:ja", "-m", "anthropic:jb", "--json", "--no-retry", "q",
            env=race_env(home, server, second_server))
    assert r.code == 4, r.stderr
    events = [json.loads(line) for line in r.out.splitlines()]
    assert all({"model", "index"} <= set(e) for e in events)
    ends = [(e["model"], e["index"], e["type"]) for e in events if e["type"] in ("done", "error")]
    assert sorted(ends) == [("anthropic:jb", 1, "error"), ("openai:ja", 0, "done")]
    assert "".join(e["text"] for e in events if e["type"] == "text" and e["index"] == 0) == "xy"
    done = next(e for e in events if e["type"] == "done")
    assert done["conversation_id"] is not None and done["turn_id"] is not None


@pytest.mark.e2e
def test_the_log_keeps_alternatives_c_continues_the_first_and_pick_switches(invoke, home, server, second_server):
    env = race_env(home, server, second_server)
    server.script("pa", chunks=["answer A"])
    second_server.script("pb", chunks=["answer B"], delay=0.05)
    r = invoke("-m", "openai:pa", "-m", "anthropic:pb", "which?", env=env)
    assert r.code == 0, r.stderr
    db = sqlite3.connect(home / "log.db")
    rows = db.execute("SELECT role, content, model, state FROM messages ORDER BY id").fetchall()
    assert rows == [("user", "which?", "pa", "ok"), ("assistant", "answer A", "pa", "ok"),
                    ("user", "which?", "pb", "ok"), ("assistant", "answer B", "pb", "ok")]
    shown = invoke("history", "show", "1", env=env)
    assert "Assistant 1 of 2: openai:pa · continued" in shown.out and "Assistant 2 of 2: anthropic:pb" in shown.out
    assert shown.out.count("TTFT") == 2
    server.script("echo2", chunks=["ok"])
    assert invoke("-c", "next", env=env).code == 0
    assert server.requests[-1].body["model"] == "pa"  # -c continues the first answer, with its model
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["which?", "answer A", "next"]
    # pick the other answer of the race: -c then continues answer B with its model
    assert invoke("-m", "openai:pa", "-m", "anthropic:pb", "again?", env=env).code == 0
    picked = invoke("pick", "2", env=env)
    assert picked.code == 0 and "answer 2 of 2 (anthropic:pb)" in picked.stderr, picked.stderr
    assert invoke("-c", "more", env=env).code == 0
    sent = second_server.requests[-1].body
    assert sent["model"] == "pb"
    assert [m["content"] for m in sent["messages"]][-3:] == ["again?", "answer B", "more"]
    assert invoke("pick", "3", env=env).code == 2


@pytest.mark.e2e
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_both_streams_at_once_and_keeps_the_partial_answers(home, server, second_server, sig, code):
    server.script("ca", chunks=[f"a{i} " for i in range(400)], delay=0.05)
    second_server.script("cb", chunks=[f"b{i} " for i in range(400)], delay=0.05)
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:ca", "-m", "anthropic:cb", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=race_env(home, server, second_server))
    got = b""
    while b"a3 " not in got:
        got += proc.stdout.read1(1000)
    deadline = time.monotonic() + 10
    while len(second_server.requests) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(sig)
    sent = time.monotonic()
    assert server.wait_disconnect(2) and second_server.wait_disconnect(2)
    closed = max(server.disconnects[0], second_server.disconnects[0]) - sent
    out, err = proc.communicate(timeout=10)
    assert closed <= 1.0, closed
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    db = sqlite3.connect(home / "log.db")
    states = db.execute("SELECT model, state, length(content) > 0 FROM messages WHERE role = 'assistant'"
                        " ORDER BY id").fetchall()
    assert states == [("ca", "interrupted", 1), ("cb", "interrupted", 1)]


@pytest.mark.e2e
def test_files_attachments_and_roles_reach_every_model(invoke, home, server, second_server):
    from test_context_inputs import png_bytes

    (home / "notes.txt").write_text("the notes")
    (home / "shot.png").write_bytes(png_bytes())
    server.script("fa", chunks=["a"])
    second_server.script("fb", chunks=["b"])
    r = invoke("-m", "openai:fa", "-m", "anthropic:fb", "-r", "code", "-f", str(home / "notes.txt"),
            "-a", str(home / "shot.png"), "explain", env=race_env(home, server, second_server))
    assert r.code == 0, r.stderr
    openai_body, anthropic_body = server.requests[-1].body, second_server.requests[-1].body
    assert openai_body["messages"][0]["role"] == "system" and anthropic_body["system"]  # the role's prompt, both
    for body, image in ((openai_body, "image_url"), (anthropic_body, "image")):
        parts = body["messages"][-1]["content"]
        assert any(p.get("type") == image for p in parts)
        assert any("the notes" in (p.get("text") or "") for p in parts)


@pytest.mark.e2e
def test_tools_are_refused_in_a_race(invoke, server):
    r = invoke("-m", "openai:a", "-m", "openai:b", "--tools", "files", "q")
    assert r.code == 2 and "--tools/--functions works with one model" in r.stderr
    r = invoke("-m", "openai:a", "-m", "openai:b", "--functions", "fns.py", "q")
    assert r.code == 2 and "--tools/--functions works with one model" in r.stderr
    assert not server.requests


@pytest.mark.e2e
def test_schema_checks_and_repairs_each_answer(invoke, home, server, second_server):
    env = race_env(home, server, second_server)
    r = invoke("-m", "openai:echo", "-m", "anthropic:claude-test", "--schema", "city, pop int",
            "[schema:missing-once] largest city", env=env)
    assert r.code == 0, r.stderr
    sections = r.out.split("\n\n")
    assert [s.splitlines()[0] for s in sections] == ["## openai:echo", "## anthropic:claude-test"]
    for section in sections:
        data = json.loads(section.splitlines()[1])
        assert set(data) == {"city", "pop"} and isinstance(data["pop"], int)
    assert len(server.requests) == 2 and len(second_server.requests) == 2  # each repaired once
    events = invoke("-m", "openai:echo", "-m", "anthropic:claude-test", "--schema", "city, pop int", "--json",
                 "[schema:missing-always] q", env=env)
    assert events.code == 8, events.stderr
    records = [json.loads(line) for line in events.out.splitlines()]
    ends = sorted((e["index"], e["type"], e.get("code")) for e in records if e["type"] in ("done", "error"))
    assert ends == [(0, "error", "schema"), (1, "error", "schema")]


def test_view_replaces_a_schema_answer_with_its_data():
    view, out, _clock = _view(160, 20, ["a", "b"])
    data = view.data(0)
    sink = data.sink()
    sink.begin()
    sink.feed(TextDelta('{"city": "Li'))
    view.flush()
    data.sink().feed(TextDelta('{"city": "Lima", "pop": 1}'))  # the corrective attempt starts afresh
    data.accept({"city": "Lima", "pop": 1})
    view.sink(0).end(TurnResult("x"))
    view.sink(1).begin()
    view.sink(1).end(TurnResult("y"))
    view.close()
    screen = Screen(160, 20)
    screen.feed(out)
    left = [row.split("│")[0].strip() for row in screen.everything()]
    assert '"city": "Lima",' in left and '"pop": 1' in left
    assert not any('{"city": "Li' in row for row in left)


# -- the REPL ------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_repl_races_picks_and_goes_back_to_one_model(repl, server, second_server):
    server.script("ra", chunks=["answer ", "A"], delay=0.02)
    second_server.script("rb", chunks=["answer ", "B"], delay=0.02)
    child = repl("-m", "openai:echo", env_extra={"ANTHROPIC_BASE_URL": second_server.url})
    child.sendline("/race openai:ra anthropic:rb")
    child.expect_exact("racing openai:ra, anthropic:rb")
    child.expect_exact(PROMPT)
    child.sendline("which?")
    child.expect_exact("TTFT", timeout=90)
    child.expect_exact("TTFT")  # both answers ended, each with its stats
    child.expect_exact(PROMPT)
    assert [r.body["messages"][-1]["content"] for r in (server.requests[-1], second_server.requests[-1])] \
        == ["which?", "which?"]
    child.sendline("/pick 2")
    child.expect_exact("answer 2 of 2")
    child.expect_exact(PROMPT)
    child.sendline("/race off")
    child.expect_exact("race off")
    child.expect_exact(PROMPT)
    child.sendline("next")
    child.expect_exact("echo: next")
    child.expect_exact(PROMPT)
    assert server.last_messages() == [{"role": "user", "content": "which?"},
                                      {"role": "assistant", "content": "answer B"},
                                      {"role": "user", "content": "next"}]
    child.sendline("/race nope:x openai:ra")
    child.expect_exact("unknown model 'nope:x'")


@pytest.mark.e2e
def test_several_models_without_a_prompt_open_the_repl_racing_them(repl, server, second_server):
    server.script("ra", chunks=["from A"])
    second_server.script("rb", chunks=["from B"])
    child = repl("-m", "openai:ra", "-m", "anthropic:rb", env_extra={"ANTHROPIC_BASE_URL": second_server.url})
    child.sendline("hello")
    child.expect_exact("from A", timeout=90)
    child.expect_exact(PROMPT)
    assert second_server.requests and second_server.requests[-1].body["messages"][-1]["content"] == "hello"


def test_a_route_in_a_race_is_logged_as_the_deployment_that_answered(server, second_server, tmp_path):
    """A route's lane was held under its first deployment; the log must name the one that answered."""
    from fakeserver import Script
    from test_routing import route_settings

    from streamchat import race, routing
    from streamchat.service import ChatSession, Overrides
    from streamchat.sinks.race import InOrder
    from streamchat.store import ConversationLog, connect
    from streamchat.ui import UI

    routing._ROUTERS.clear()
    server.script("echo", Script(status=500))  # the route's first deployment fails before answering
    settings = route_settings(server.url, second_server.url, "round-robin")
    log = ConversationLog(connect(tmp_path / "log.db"), warn=print, path=tmp_path / "log.db")
    session = ChatSession(settings, Overrides(model="b:echo", retry=False), log=log, warm=True)
    racers = race.lanes(session, ["team", "b:echo"])
    out = FakeTTY()
    out.isatty = lambda: False  # type: ignore[method-assign]
    env = Environment(stdin=None, stdout=out, stderr=FakeTTY(), environ={})
    try:
        results = race.run(session, racers, "q", InOrder(env, UI(env), [lane.model_name for lane in racers]))
    finally:
        routing._ROUTERS.clear()
    assert all(r.ok for r in results)
    assert log.db is not None
    rows = log.db.execute("SELECT provider, model FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("b", "echo"), ("b", "echo")]
    assert log.load(session.conversation.id).model == "b:echo"  # what -c continues with


def test_a_routes_fallback_notice_goes_through_its_lane(server, second_server, tmp_path):
    """A route's 'failed before answering' notice was sent to the session's UI captured when the
    route was built, so in a race it went straight to stderr and tore the live view (QA Q4); it
    belongs to the lane's own UI (its pane, or a line naming the lane in a pipe)."""
    from fakeserver import Script
    from test_routing import route_settings

    from streamchat import race, routing
    from streamchat.service import ChatSession, Overrides
    from streamchat.sinks.race import InOrder
    from streamchat.ui import UI

    routing._ROUTERS.clear()
    server.script("echo", Script(status=500))  # the route's first deployment fails before answering
    settings = route_settings(server.url, second_server.url, "round-robin")
    out, err = FakeTTY(), FakeTTY()
    out.isatty = lambda: False  # type: ignore[method-assign]
    err.isatty = lambda: False  # type: ignore[method-assign]
    env = Environment(stdin=None, stdout=out, stderr=err, environ={})
    ui = UI(env)
    session = ChatSession(settings, Overrides(model="b:echo", retry=False), ui=ui, warm=True)
    racers = race.lanes(session, ["team", "b:echo"])
    try:
        results = race.run(session, racers, "q", InOrder(env, ui, [lane.model_name for lane in racers]))
    finally:
        routing._ROUTERS.clear()
    assert all(r.ok for r in results)
    notices = [line for line in err.getvalue().splitlines() if "failed before answering" in line]
    assert len(notices) == 1 and notices[0].startswith("team: route team: a:echo failed before answering"), err.getvalue()


@pytest.mark.parametrize("arg", ["openai:fast", "openai:fast openai:fast"])
def test_race_with_one_model_in_the_repl_gives_the_repl_form(arg):
    """/race with one model answered with the command line's hint (`streamchat -m A -m B`, QA Q5)."""
    from types import SimpleNamespace

    from streamchat.repl_commands import cmd_race

    said: list[str] = []

    def race(models: tuple[str, ...]) -> None:
        raise AssertionError(f"raced {models}")

    repl = SimpleNamespace(ui=SimpleNamespace(notice=said.append), race=race, racing=())
    cmd_race(repl, arg)  # type: ignore[arg-type]
    assert said == ["a race needs at least two different models: /race MODEL_A MODEL_B…"]
