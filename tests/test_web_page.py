"""The web page in headless Chromium (Debian's package), driven by Playwright."""

from __future__ import annotations

import shutil

import pytest
from fakeserver import Script
from servehelp import ServeProcess

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(tmp_path, server):
    proc = ServeProcess(tmp_path, server, "-m", "openai:web")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(bypass_csp=True)  # our CSP forbids eval; Playwright polls with it
        page.goto(proc.url + "/")
        yield page
        browser.close()
    proc.stop()


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
    assert "TTFT" in status and "tok/s" in status
    assert server.last_messages() == [{"role": "user", "content": "hello"}]


def test_markdown_subset_is_rendered_from_text_nodes(page, server):
    answer = "# Title\n\nSome **bold** and `code` <script>alert(1)</script>\n\n- one\n- two\n\n```py\nx = '<b>'\n```\n"
    server.script("web", Script(chunks=[answer[i : i + 5] for i in range(0, len(answer), 5)]))
    page.fill("#prompt", "md")
    page.click("#send")
    page.wait_for_function("document.querySelector('#status').textContent.includes('stop')", timeout=15000)
    box = page.locator(".assistant").last
    assert box.locator("h1").inner_text() == "Title"
    assert box.locator("strong").inner_text() == "bold" and box.locator("code").first.inner_text() == "code"
    assert box.locator("li").all_inner_texts() == ["one", "two"]
    assert box.locator("pre code").inner_text() == "x = '<b>'"
    assert box.locator("script").count() == 0 and box.locator("b").count() == 0
    assert "<script>alert(1)</script>" in box.inner_text()


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
