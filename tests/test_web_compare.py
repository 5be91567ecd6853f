"""The page's compare mode in headless Chromium (Debian's package), driven by Playwright: models
side by side streaming at once, their stats, blind voting, and model text kept inert in every column."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from servehelp import ServeProcess
from test_web_page import CHROMIUM, FLAGS, XSS

from streamchat.store import ConversationLog, connect

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")]

# dollars per million tokens for one of the models, so its column shows a cost and the others do not
PRICED = '[prices."compat:fast"]\ninput = 1000\noutput = 1000\n'
ALL_ENDED = ("() => { const s = [...document.querySelectorAll('.round:last-of-type .stats')];"
             " return s.length > 0 && s.every(e => /stop|stopped|error/.test(e.textContent)); }")


@pytest.fixture(scope="module")
def _browser(_server_instance, tmp_path_factory):
    """One serve and one Chromium for the module (each takes seconds to start on a loaded machine)."""
    home = tmp_path_factory.mktemp("compare")
    proc = ServeProcess(home, _server_instance, "-m", "compat:slow", "--allow-model", "compat:fast",
                        "--allow-model", "compat:third", config_extra=PRICED)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield proc, browser, home
        browser.close()
    proc.stop()


@pytest.fixture
def page(_browser, server):
    proc, browser, _home = _browser
    page = browser.new_page(bypass_csp=True, viewport={"width": 1400, "height": 900})  # Playwright polls with eval
    page.goto(proc.url + "/")
    page.wait_for_function("document.querySelectorAll('#pick-c option').length > 1")
    yield page
    page.close()


@pytest.fixture
def serve_home(_browser):
    """The home (and so the log, STREAMCHAT_DB) serve runs with."""
    return _browser[2]


def compare(page, *models: str, blind: bool = False) -> None:
    page.select_option("#mode", "compare")
    for pick, model in itertools.zip_longest(("#pick-a", "#pick-b", "#pick-c"), models, fillvalue=""):
        page.select_option(pick, model)
    page.set_checked("#blind", blind)


def ask(page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.click("#send")


def columns(page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(".round:last-of-type .column", """cols => cols.map(c => ({
        head: c.querySelector('.head').textContent, text: c.querySelector('.assistant').innerText.trim(),
        stats: c.querySelector('.stats').textContent, winner: c.classList.contains('winner')}))""")


def test_two_models_stream_side_by_side_at_once_each_with_its_stats(page, server):
    slow, fast = [f"slow{i} " for i in range(30)], [f"fast{i} " for i in range(30)]
    server.script("slow", Script(chunks=slow, delay=0.06))
    server.script("fast", Script(chunks=fast, delay=0.03))
    compare(page, "compat:slow", "compat:fast")
    started = time.monotonic()
    ask(page, "race")
    # both answers grow at once: a moment where each column holds part of its answer and neither has ended
    page.wait_for_function("""() => { const cols = [...document.querySelectorAll('.round .column')];
        return cols.length === 2 && cols.every(c => /[0-9]/.test(c.querySelector('.assistant').textContent)
                                                   && !c.querySelector('.stats').textContent.includes('stop')); }""",
                           timeout=15000)
    page.wait_for_function(ALL_ENDED, timeout=15000)
    elapsed = time.monotonic() - started
    assert elapsed < 0.06 * 30 + 0.03 * 30, elapsed  # the time of the slower one, not the sum
    left, right = columns(page)
    assert (left["head"], right["head"]) == ("compat:slow", "compat:fast")
    assert (left["text"], right["text"]) == ("".join(slow).strip(), "".join(fast).strip())
    for column in (left, right):
        assert "TTFT" in column["stats"] and "30 tokens" in column["stats"] and re.search(r"\d\.\d tok/s", column["stats"])
    assert "$" not in left["stats"] and "$0.0370" in right["stats"]  # (7 + 30 tokens) × $1000/M; slow has no price
    boxes = [page.locator(".round .column").nth(i).bounding_box() for i in (0, 1)]
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"] and boxes[0]["y"] == boxes[1]["y"]  # side by side
    asked = sorted((r.body["model"], r.body["messages"]) for r in server.requests)
    assert asked == [("fast", [{"role": "user", "content": "race"}]), ("slow", [{"role": "user", "content": "race"}])]
    assert page.locator(".vote button").all_inner_texts() == ["compat:slow is better", "compat:fast is better",
                                                               "Tie", "Both bad"]


def test_each_model_continues_its_own_conversation(page, server):
    server.script("slow", Script(chunks=["from slow"]))
    server.script("fast", Script(chunks=["from fast"]))
    compare(page, "compat:slow", "compat:fast")
    ask(page, "one")
    page.wait_for_function(ALL_ENDED, timeout=15000)
    ask(page, "two")
    page.wait_for_function("document.querySelectorAll('.round').length === 2", timeout=15000)
    page.wait_for_function(ALL_ENDED, timeout=15000)
    second = {r.body["model"]: r.body["messages"] for r in server.requests[2:]}
    assert second["fast"] == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "from fast"},
                              {"role": "user", "content": "two"}]
    assert second["slow"][1] == {"role": "assistant", "content": "from slow"}


def test_blind_mode_hides_the_names_until_the_vote_which_is_stored(page, server, serve_home):
    server.script("slow", Script(chunks=["the answer from S"], delay=0.02))
    server.script("fast", Script(chunks=["the answer from F"], delay=0.02))
    compare(page, "compat:slow", "compat:fast", blind=True)
    ask(page, "which is better?")
    page.wait_for_selector(".vote button", timeout=15000)
    shown = columns(page)
    assert [c["head"] for c in shown] == ["Model A", "Model B"]
    hidden = page.inner_html(".round:last-of-type")  # nor in an attribute
    assert "compat:" not in hidden and "slow" not in hidden and "fast" not in hidden
    assert page.locator(".vote button").all_inner_texts() == ["Model A is better", "Model B is better", "Tie", "Both bad"]
    fast_column = next(i for i, c in enumerate(shown) if c["text"] == "the answer from F")
    page.click(f'.vote button[data-choice="{fast_column}"]')
    page.wait_for_function("document.querySelector('.vote .note').textContent === 'vote saved'", timeout=10000)
    revealed = columns(page)
    letter = "AB"[fast_column]
    assert revealed[fast_column]["head"] == f"Model {letter}: compat:fast" and revealed[fast_column]["winner"]
    assert revealed[1 - fast_column]["head"].endswith(": compat:slow") and not revealed[1 - fast_column]["winner"]
    assert page.locator(".vote button:enabled").count() == 0  # one vote per round
    board = json.loads(subprocess.run([STREAMCHAT, "history", "votes", "--json"], env=base_env(serve_home),
                                      capture_output=True, check=True).stdout)
    assert [(s["model"], s["wins"], s["losses"], s["ties"]) for s in board] == [("compat:fast", 1, 0, 0),
                                                                                ("compat:slow", 0, 1, 0)]
    (vote,) = ConversationLog(connect(serve_home / "log.db"), warn=print).votes()
    assert vote.blind and vote.prompt == "which is better?" and vote.models == tuple(
        "compat:fast" if i == fast_column else "compat:slow" for i in (0, 1))


def test_blind_order_is_shuffled_over_every_permutation(page):
    seen = page.evaluate("() => { const s = new Set(); for (let i = 0; i < 300; i++)"
                         " s.add(shuffled(['a', 'b', 'c']).join('')); return [...s].sort(); }")
    assert seen == sorted("".join(p) for p in itertools.permutations("abc"))


def test_xss_from_any_model_stays_inert_in_every_column(page, server):
    answer = "**bold** ok\n\n" + "\n\n".join(XSS) + "\n"
    for model in ("slow", "fast", "third"):
        server.script(model, Script(chunks=[answer[i : i + 6] for i in range(0, len(answer), 6)]))
    compare(page, "compat:slow", "compat:fast", "compat:third", blind=True)
    ask(page, "attack")
    page.wait_for_function(ALL_ENDED, timeout=15000)
    shown = columns(page)
    assert len(shown) == 3 and all("<img src=x onerror=window.__xss=1>" in c["text"] for c in shown)
    for tag in ("img", "script", "svg", "iframe"):
        assert page.locator(f".round {tag}").count() == 0, tag
    assert page.locator(".round .assistant strong").count() == 3  # Markdown rendered, in each column
    hrefs = page.locator(".round .assistant a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.split(":")[0] in ("http", "https") for h in hrefs), hrefs
    assert page.evaluate("window.__xss") is None
    assert page.locator(".vote button").count() == 5  # the page's own buttons only: 3 winners, tie, both bad


def test_stop_ends_every_column_and_closes_each_upstream(page, server):
    for model in ("slow", "fast"):
        server.script(model, Script(chunks=[f"{model}{i} " for i in range(400)], delay=0.03))
    compare(page, "compat:slow", "compat:fast")
    ask(page, "long")
    page.wait_for_function("[...document.querySelectorAll('.round .assistant')].every(a => a.textContent.includes('3'))",
                           timeout=15000)
    page.click("#stop")
    page.wait_for_function(ALL_ENDED, timeout=5000)
    deadline = time.monotonic() + 3
    while len(server.disconnects) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.disconnects) == 2, "an upstream stream was left open"
    assert all(c["text"].endswith("[stopped]") for c in columns(page))
    assert page.locator(".vote").count() == 1 and page.is_enabled("#send")  # partial answers can still be judged
