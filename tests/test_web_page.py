"""The web page in headless Chromium (Debian's package), driven by Playwright."""

from __future__ import annotations

import re
import shutil

import pytest
from fakeserver import Script
from servehelp import ServeProcess

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def _browser(_server_instance, tmp_path_factory):
    """One serve and one Chromium for the module (each took 5-8 s to start per test under load)."""
    proc = ServeProcess(tmp_path_factory.mktemp("web"), _server_instance, "-m", "openai:web")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield proc, browser
        browser.close()
    proc.stop()


@pytest.fixture
def page(_browser, server):
    """A fresh page (its own conversation) for each test."""
    proc, browser = _browser
    page = browser.new_page(bypass_csp=True)  # our CSP forbids eval; Playwright polls with it
    page.goto(proc.url + "/")
    yield page
    page.close()


def test_page_streams_non_ascii_text_safely(page, server):
    chunks = ["Grüße ", "🎉 中文 ", "<b>not bold</b> ", "<img src=x onerror=alert(1)>"]
    server.script("web", Script(chunks=chunks, byte_split=3, delay=0.02))
    page.fill("#prompt", "hello")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    answer = page.locator(".assistant").last
    assert answer.inner_text() == "".join(chunks).strip()
    assert page.locator(".assistant img").count() == 0 and page.locator(".assistant b").count() == 0
    status = page.inner_text("#status")
    assert "TTFT" in status and re.search(r"· (\d+\.\d|–) tok/s", status), status  # – under 100 ms of generation
    assert server.last_messages() == [{"role": "user", "content": "hello"}]


def test_a_rate_needs_100_ms_of_generation(page, server):
    """An answer arriving in one burst showed tokens over ~0 ms (`40000.0 tok/s`); like the CLI's
    --stats (events.MIN_RATE_MS) the page shows no rate then, and a real one for a slower answer."""
    server.script("web", Script(chunks=[f"w{i} " for i in range(40)]))
    page.fill("#prompt", "burst")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    status = page.inner_text("#status")
    assert "40 tokens · – tok/s" in status, status
    server.script("web", Script(chunks=[f"w{i} " for i in range(8)], delay=0.05))
    page.fill("#prompt", "slow")
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('.assistant').length === 2 "
                           "&& document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    assert re.search(r"8 tokens · \d+\.\d tok/s", page.inner_text("#status")), page.inner_text("#status")


def test_the_rate_is_serves_figure_not_the_networks(page, server):
    """The page timed tokens itself, network included: behind a proxy that buffers the stream (here
    Playwright's, passing serve's real response on whole) every token arrives in one burst and it showed
    `– tok/s`, though serve's `done` carries the rate it measured over the generation."""
    import json

    def buffered(route):
        route.fulfill(response=route.fetch())

    page.route("**/stream", buffered)
    server.script("web", Script(chunks=[f"w{i} " for i in range(8)], delay=0.05))
    with page.expect_response("**/stream") as got:
        page.fill("#prompt", "slow")
        page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    lines = got.value.text().splitlines()
    done = json.loads(lines[lines.index("event: done") + 1].removeprefix("data: "))
    tps = done["stats"]["tokens_per_s"]
    assert isinstance(tps, float), done
    assert f"· {tps:.1f} tok/s" in page.inner_text("#status"), (page.inner_text("#status"), done)


def test_markdown_is_rendered_and_html_in_the_answer_stays_text(page, server):
    answer = "# Title\n\nSome **bold** and `code` <script>alert(1)</script>\n\n- one\n- two\n\n```py\nx = '<b>'\n```\n"
    server.script("web", Script(chunks=[answer[i : i + 5] for i in range(0, len(answer), 5)]))
    page.fill("#prompt", "md")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    box = page.locator(".assistant").last
    assert box.locator("h1").inner_text() == "Title"
    assert box.locator("strong").inner_text() == "bold" and box.locator("code").first.inner_text() == "code"
    assert box.locator("li").all_inner_texts() == ["one", "two"]
    assert box.locator("pre code").inner_text() == "x = '<b>'\n"
    assert box.locator("script").count() == 0 and box.locator("b").count() == 0
    assert "<script>alert(1)</script>" in box.inner_text()


XSS = [
    "<img src=x onerror=window.__xss=1>",
    "<script>window.__xss=1</script>",
    "<svg onload=window.__xss=1></svg>",
    "<iframe src=javascript:window.__xss=1></iframe>",
    '<a href="javascript:window.__xss=1">raw</a>',
    "[click](javascript:window.__xss=1)",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](http://127.0.0.1:9/track.png)",
]


def test_tables_links_and_quotes_render_and_no_payload_runs(page, server):
    """The page showed tables, links and quotes as raw Markdown (#28.23); it now renders with the
    bundled markdown-it, its output sanitized by the bundled DOMPurify."""
    answer = ("| name | where |\n|---|---|\n| one | [site](https://example.com/) |\n\n> quoted *text*\n\n"
              "see https://example.org/x\n\n" + "\n\n".join(XSS) + "\n")
    server.script("web", Script(chunks=[answer[i : i + 7] for i in range(0, len(answer), 7)]))
    page.fill("#prompt", "md")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    box = page.locator(".assistant").last
    assert box.locator("table th").all_inner_texts() == ["name", "where"]
    assert box.locator("table td").all_inner_texts() == ["one", "site"]
    assert box.locator("blockquote em").inner_text() == "text"
    link = box.locator("a", has_text="site")
    assert (link.get_attribute("href"), link.get_attribute("target"), link.get_attribute("rel")) == \
        ("https://example.com/", "_blank", "noopener noreferrer")
    assert box.locator('a[href="https://example.org/x"]').count() == 1  # a bare URL becomes a link
    hrefs = box.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(h.split(":")[0] in ("http", "https") for h in hrefs), hrefs  # no javascript: or data:
    assert "http://127.0.0.1:9/track.png" in hrefs  # an image is a link to click, never loaded by itself
    for tag in ("img", "script", "svg", "iframe"):
        assert box.locator(tag).count() == 0, tag
    assert "<img src=x onerror=window.__xss=1>" in box.inner_text()  # shown as text
    assert page.evaluate("window.__xss") is None


def test_stop_button_aborts_the_stream(page, server):
    server.script("web", Script(chunks=[f"word{i} " for i in range(400)], delay=0.03))
    page.fill("#prompt", "long one")
    page.click("#send")
    page.wait_for_function("document.querySelector('.assistant') && "
                           "document.querySelector('.assistant').textContent.includes('word3')", timeout=15000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stopped')", timeout=5000)
    assert server.wait_disconnect(2), "the upstream stream was not closed"
    text = page.locator(".assistant").last.inner_text()
    assert text.endswith("[stopped]") and "word3" in text and "word399" not in text
    assert page.is_enabled("#send")
