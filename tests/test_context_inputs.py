"""Bringing work in: -f files, directories, globs, stdin, URLs and command output; -a images and PDFs,
checked in the exact request bodies both SDKs send to the fake server."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import zlib

import pytest
from conftest import base_env
from localhttp import Quiet, local_http
from test_repl import repl as repl  # the REPL fixture

# -- real file bytes ------------------------------------------------------------------------------


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))  # 2x2 red, RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pdf_bytes(text: str = "Quarterly numbers went up") -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def last_user_content(server):
    return server.last_messages()[-1]["content"]


# -- -f --------------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "src" / "app.py").write_text("print('app')\n")
    (root / "src" / "pkg" / "util.py").write_text("def util(): ...\n")
    (root / "debug.log").write_text("noise\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("generated\n")
    (root / "logo.png").write_bytes(png_bytes())
    (root / "big.txt").write_text("x" * 300_000)
    return root


def test_directory_honors_gitignore_and_skips_binary_vcs_and_large_files(invoke, server, project):
    r = invoke("-m", "openai:echo", "-f", str(project), "explain")
    assert r.code == 0, r.stderr
    content = last_user_content(server)
    assert content.startswith("explain\n\n<source name=")
    assert f'<source name="{project}/src/app.py">\nprint(\'app\')\n</source>' in content
    assert "util()" in content
    for absent in ("noise", "generated", "[core]", "PNG", "xxxx"):
        assert absent not in content, absent
    assert content.index("app.py") < content.index("util.py")  # sorted
    assert "included:" in r.stderr and "logo.png (binary)" in r.stderr and "big.txt (too large)" in r.stderr


def test_glob_stdin_and_command_sources(invoke, server, project):
    r = invoke("-m", "openai:echo", "-f", f"{project}/src/**/*.py", "-f", "-", "-f", "!echo from a command", "q",
            stdin=b"piped text\n")
    assert r.code == 0, r.stderr
    content = last_user_content(server)
    assert "util()" in content and '<source name="stdin">\npiped text\n</source>' in content
    assert '<source name="!echo from a command">\nfrom a command\n</source>' in content


def test_pipes_and_devices_are_read_and_bounded(invoke, server, tmp_path):
    """-f <(git diff) names a pipe (/dev/fd/63), which is not a regular file: it was refused as
    "no such file or directory". A pipe or a device is read now, no further than the -f total:
    /dev/zero is a binary file, not a read that never ends, and a large file is not read whole."""
    import os

    fifo = tmp_path / "diff"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("diff --git a/x b/x\n"), daemon=True)
    writer.start()
    r = invoke("-m", "openai:echo", "-f", str(fifo), "review")
    writer.join(10)
    assert r.code == 0, r.stderr
    assert '">\ndiff --git a/x b/x\n</source>' in last_user_content(server)
    os.mkfifo(tmp_path / "nobody-writes")  # matched by a pattern, not named: skipped, as in a directory
    r = invoke("-m", "openai:echo", "-f", str(tmp_path / "*"), "all", timeout=20)
    assert r.code == 0 and "nobody-writes" not in r.stderr, r.stderr
    r = invoke("-m", "openai:echo", "-f", "/dev/null", "empty")
    assert r.code == 0 and "included: /dev/null (0 B)" in r.stderr, r.stderr
    r = invoke("-m", "openai:echo", "-f", "/dev/zero", "zeros")
    assert r.code == 2 and "/dev/zero is a binary file" in r.stderr, r.stderr
    big = tmp_path / "big.log"
    with open(big, "wb") as f:
        f.write(b"log line\n" * 1000)
        f.truncate(300 * 1024 * 1024)  # sparse after its first lines: 300 MB, which was read whole
    r = invoke("-m", "openai:echo", "-f", str(big), "summarize")
    assert r.code == 2 and "big.log (300.0 MB) does not fit the -f total of 1.0 MB" in r.stderr, r.stderr


@pytest.mark.parametrize("source,code,words", [
    ("/no/such/file", 2, "no such file"),
    ("!false", 2, "failed (exit 1)"),
    ("!no-such-command-xyz", 2, "command not found"),
    ("!yes", 2, "printed more than 1.0 MB"),  # stopped there, not captured whole for 30 s
    ("!/etc/passwd", 2, "cannot run /etc/passwd: Permission denied"),
    ("http://ann:pw@[::1", 2, "http://[::1 is not a valid URL"),  # was "internal error: ValueError"
])
def test_bad_sources_send_nothing(invoke, server, source, code, words):
    r = invoke("-m", "openai:echo", "-f", source, "q")
    assert r.code == code and words in r.stderr and "Traceback" not in r.stderr
    assert not server.requests


def test_symlinks_out_of_a_directory_or_a_globs_base_are_skipped_and_files_sent_once(invoke, server, tmp_path):
    """`ln -s ~/.ssh/id_rsa proj/notes.md; streamchat -f proj/ q` sent the key, and `-f 'proj/**'`
    also followed a symlinked folder out of proj and sent each file twice (the folder matched, and
    its files). A symlink that leads out of what was named is listed as skipped; one that stays
    inside is read once; a file is sent once however many sources reach it."""
    outside = tmp_path / "home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_rsa").write_text("PRIVATE KEY\n")
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "app.py").write_text("print('app')\n")
    (proj / "notes.md").symlink_to(outside / ".ssh" / "id_rsa")
    (proj / "keys").symlink_to(outside / ".ssh")
    (proj / "alias.py").symlink_to(proj / "src" / "app.py")  # inside: the same file, once
    for source in (f"{proj}/", f"{proj}/**", f"{proj}/*.md"):
        server.requests.clear()
        r = invoke("-m", "openai:echo", "-f", source, "-f", f"{proj}/src/app.py", "q")
        assert r.code == 0, r.stderr
        content = last_user_content(server)
        assert "PRIVATE KEY" not in content, source
        assert "notes.md (symlink out of" in r.stderr, r.stderr
        if source.endswith("/*.md"):
            continue
        assert "keys (symlink out of" in r.stderr, r.stderr
        assert content.count("print('app')") == 1, content


@pytest.mark.parametrize("source", ["proj/", "proj/**", "proj/**/*.md", "proj/*"])
def test_each_skipped_symlink_is_listed_once_naming_what_was_named(tmp_path, monkeypatch, source):
    """`-f 'proj/**'` walked every folder the glob matched again, and `**` follows a link back up
    (`sub/up -> ..`) to the kernel's limit: the same link out was listed dozens of times, as
    "symlink out of proj/sub/up/sub/up/…", and a broken link was left out without a word."""
    from streamchat.context import gather

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "key.md").write_text("PRIVATE\n")
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "a.md").write_text("hi\n")
    (proj / "notes.md").symlink_to("../outside/key.md")
    (proj / "outdir").symlink_to("../outside")
    (proj / "dangling.md").symlink_to("nowhere.md")
    (proj / "sub" / "up").symlink_to("..")
    (proj / "sub" / "same.md").symlink_to("../a.md")
    pieces = gather([source], stdin=lambda: None, timeout=5).pieces
    skipped = {p.name: p.note for p in pieces if p.text is None}
    assert [p.name for p in pieces if p.text is not None] == ["proj/a.md"]
    assert len(skipped) == len([p for p in pieces if p.text is None])  # each once
    assert skipped == {"proj/notes.md": "symlink out of proj", "proj/dangling.md": "broken symlink",
                       "proj/outdir": "symlink out of proj"}  # the link itself (`**/*.md` met outdir/key.md)
    again = gather(["proj/a.md", "proj/"], stdin=lambda: None, timeout=5)  # a folder whose files were sent is not "empty"
    assert [p.name for p in again.pieces if p.text is not None] == ["proj/a.md"]


def test_glob_base():
    from streamchat.context import _glob_base

    assert _glob_base("src/**/*.py") == "src"
    assert _glob_base("/a/b/*") == "/a/b"
    assert _glob_base("*.md") == "."
    assert _glob_base("a/[bc]/d") == "a"


def test_a_failing_command_says_why_and_an_empty_one_is_noted(invoke, server):
    """`-f '!ls | wc -l'` said "failed (exit 2) — run it by hand": there is no shell, so `|` went
    to ls, whose stderr (which says so) was dropped; a command that printed nothing was sent
    without a word. The error names the missing shell and the way to get one, and quotes the
    command's last stderr lines, sanitized; empty output is noted in the dim summary line."""
    r = invoke("-m", "openai:echo", "-f", "!ls | wc -l", "q")
    assert r.code == 2 and "Traceback" not in r.stderr, r.stderr
    assert "ls: cannot access '|'" in r.stderr
    assert "without a shell, so `|` went to ls as an argument: use -f '!sh -c \"ls | wc -l\"'" in r.stderr
    r = invoke("-m", "openai:echo", "-f", "!sh -c 'printf \"one\\ntwo\\n\\033]0;owned\\007\\n\" >&2; exit 3'", "q")
    assert r.code == 2 and "failed (exit 3): one; two; \u241b]0;owned\u2407" in r.stderr, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "without a shell" not in r.stderr
    assert not server.requests
    r = invoke("-m", "openai:echo", "-f", "!true", "q")
    assert r.code == 0 and "included: !true (printed nothing)" in r.stderr, r.stderr


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("background", ["sleep 300", "sleep 300 >/dev/null"])
def test_a_commands_background_children_are_stopped_at_the_limit(tmp_path, background):
    """`-f '!sh -c "sleep 300 & echo hi"'`: the shell was killed at the limit, its background
    child was not: it kept running, and (holding stdout) kept -f waiting for 300 s. The command
    runs in its own process group, all of it stopped at the limit (1 s here; 30 s for -f)."""
    import os
    import signal

    from streamchat.context import run_command
    from streamchat.errors import UsageError

    pidfile = tmp_path / "pid"
    errors: list[BaseException] = []

    def call() -> None:
        try:
            run_command(f"sh -c '{background} & echo $! > {pidfile}; echo hi; sleep 300'", limit=1)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(20)
    pid = int(pidfile.read_text())
    try:
        assert not worker.is_alive(), "still waiting for the background child"
        assert isinstance(errors[0], UsageError) and "ran longer than 1 s" in str(errors[0])
        for _ in range(50):  # SIGKILL was sent; its exit may lag the read's end by a moment
            if not _running(pid):
                break
            time.sleep(0.1)
        assert not _running(pid)
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


class _Pages(Quiet):
    seen: list[str] = []  # the paths asked for, in order

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        routes = {
            "/page": ("text/html; charset=utf-8",
                      b"<html><body><h1>Title</h1><p>Body with <b>bold</b>.</p><script>x()</script></body></html>"),
            "/data": ("application/json", b'{"k": [1, 2]}'),
            "/image": ("image/png", png_bytes()),
        }
        if self.path == "/slow":
            time.sleep(3)
        if self.path.startswith("/drip"):  # a byte every 0.2 s, never a pause long enough for --timeout
            return self._drip(headers=self.path == "/drip-headers")
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.end_headers()
            return
        if self.path == "/private" and self.headers.get("Authorization") == BASIC_AUTH:
            routes["/private"] = ("text/plain", b"members only")
        if self.path not in routes:
            self.send_response(404)
            self.end_headers()
            return
        kind, body = routes[self.path]
        self.reply(200, body, kind)

    def _drip(self, *, headers: bool) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
        if not headers:
            self.wfile.write(b"Content-Length: 1000\r\n\r\n")
        try:
            for _ in range(150):  # 30 s at most: the client is meant to leave long before
                self.wfile.write(b"x")
                time.sleep(0.2)
        except OSError:  # the client left
            pass


BASIC_AUTH = "Basic " + base64.b64encode(b"ann:s3cret-pw").decode()


class _Proxy(Quiet):
    """An HTTP proxy standing in for the internet: `public.example` redirects to `target` (the
    local pages server) or to `other.example`, whose page it serves itself."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802
        location = {"http://public.example/to-local": f"{self.target}/data",
                    "http://public.example/to-public": "http://other.example/page"}.get(self.path)
        if location:
            self.send_response(302)
            self.send_header("Location", location)
            self.end_headers()
            return
        self.reply(200 if self.path == "http://other.example/page" else 404, b"a public page")


@pytest.fixture(scope="module")
def pages():
    with local_http(_Pages) as url:
        yield url


def test_urls_html_becomes_text_json_stays(invoke, server, pages):
    r = invoke("-m", "openai:echo", "-f", f"{pages}/moved", "-f", f"{pages}/data", "q")
    assert r.code == 0, r.stderr
    content = last_user_content(server)
    assert "# Title" in content and "**bold**" in content and "<p>" not in content and "x()" not in content
    assert '{"k": [1, 2]}' in content


@pytest.mark.parametrize("path,code,words", [("/image", 2, "not text or HTML"), ("/missing", 6, "HTTP 404"),
                                             ("/slow", 6, "did not arrive within 1 s")])
def test_url_failures(invoke, server, pages, path, code, words):
    r = invoke("-m", "openai:echo", "--timeout", "1", "-f", f"{pages}{path}", "q")
    assert r.code == code and words in r.stderr
    assert not server.requests


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/drip-headers", "/drip-body"])
def test_a_url_that_trickles_is_cut_at_the_timeout_in_all(invoke, server, pages, path):
    """--timeout bounds each read, and a server sending a byte every 0.2 s (of its headers, or of
    its body) never let one time out: -f waited for as long as the server kept dripping. The
    whole fetch now gets --timeout; then exit 6 and nothing is sent."""
    r = invoke("-m", "openai:echo", "--timeout", "2", "-f", f"{pages}{path}", "q", timeout=25)
    assert r.code == 6 and f"{pages}{path} did not arrive within 2 s" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not server.requests


def test_credentials_in_a_url_are_used_but_not_shown_sent_or_stored(invoke, server, pages, home):
    """`-f https://ann:s3cret-pw@host/…` showed the password in the summary line, sent it to the
    model in the source's label and stored it in the log. The fetch still uses it."""
    r = invoke("-m", "openai:echo", "-f", f"http://ann:s3cret-pw@{pages[len('http://'):]}/private", "q")
    assert r.code == 0, r.stderr
    content = last_user_content(server)
    assert f'<source name="{pages}/private">\nmembers only\n</source>' in content
    assert f"included: {pages}/private" in r.stderr
    stored = b"".join(p.read_bytes() for p in home.glob("log.db*"))
    assert b"members only" in stored
    for where in (r.stderr, content, stored.decode("utf-8", "replace")):
        assert "s3cret" not in where
    r = invoke("-m", "openai:echo", "-f", f"http://ann:s3cret-pw@{pages[len('http://'):]}/missing", "q")
    assert r.code == 6 and "HTTP 404" in r.stderr and "s3cret" not in r.stderr, r.stderr


def test_a_public_page_may_not_redirect_to_a_private_address(invoke, server, pages, home):
    """A page on the internet redirected -f to a loopback service, whose answer went to the model.
    The internet here is a proxy (the name `public.example` never resolves, so it counts as
    public); its redirect to 127.0.0.1 is refused before that address is asked, while a redirect
    to another public host is followed. A private original may redirect anywhere (/moved above)."""
    _Proxy.target = pages
    with local_http(_Proxy) as proxy:
        env = base_env(home, server, HTTP_PROXY=proxy, NO_PROXY="127.0.0.1,localhost")
        _Pages.seen.clear()
        r = invoke("-m", "openai:echo", "-f", "http://public.example/to-local", "q", env=env)
        assert r.code == 6 and "http://public.example/to-local redirects to a private address (127.0.0.1)" in r.stderr
        assert "/data" not in _Pages.seen and not server.requests
        r = invoke("-m", "openai:echo", "-f", "http://public.example/to-public", "q", env=env)
        assert r.code == 0, r.stderr
        assert '<source name="http://public.example/to-public">\na public page\n</source>' in last_user_content(server)


def test_a_name_that_rebinds_to_a_private_address_is_cut_at_connect(pages, monkeypatch):
    """DNS rebinding: the redirect's host resolves to a public address for the check and to a
    private one for the connection. The address actually connected is checked too, and the
    request is not sent. (The one fake here is that DNS answer; the servers are real.)"""
    from ipaddress import ip_address

    from streamchat import fetch
    from streamchat.errors import NetworkError

    honest = fetch.addresses
    monkeypatch.setattr(fetch, "addresses", lambda host: [ip_address("93.184.216.34")] if host == "localhost"
                        else honest(host))
    monkeypatch.setattr(_Proxy, "target", pages.replace("127.0.0.1", "localhost"))
    with local_http(_Proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        _Pages.seen.clear()
        with pytest.raises(NetworkError, match=r"redirects to a private address \(localhost\)"):
            fetch.fetch_url("http://public.example/to-local", timeout=10)
        assert "/data" not in _Pages.seen


def test_redirect_policy():
    from ipaddress import ip_address as ip

    from streamchat.fetch import redirect_refused, shown_url

    public, home_ = [ip("93.184.216.34")], [ip("192.168.1.10")]
    for private in ("127.0.0.1", "::1", "10.0.0.5", "172.16.0.1", "192.168.0.1", "169.254.169.254", "fe80::1",
                    "fd00::1", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1"):
        assert redirect_refused("example.com", public, "evil.test", [ip(private)]), private
        assert not redirect_refused("intranet", home_, "evil.test", [ip(private)]), private  # private original
    assert not redirect_refused("example.com", public, "cdn.test", [ip("1.1.1.1")])
    assert not redirect_refused("example.com", public, "EXAMPLE.com", [ip("127.0.0.1")])  # the same host
    assert redirect_refused("unresolved.test", [], "localhost", [ip("127.0.0.1"), ip("::1")])
    assert redirect_refused("example.com", [*public, ip("10.0.0.1")], "x.test", [ip("1.1.1.1"), ip("127.0.0.1")])
    assert shown_url("https://ann:pw@example.com:8443/a?b=1#c") == "https://example.com:8443/a?b=1#c"
    assert shown_url("https://tok@[::1]/x") == "https://[::1]/x"
    assert shown_url("https://example.com/@home") == "https://example.com/@home"
    assert shown_url("http://a@b@example.com?q=@") == "http://example.com?q=@"


# -- -a --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["openai", "compat", "anthropic"])
def test_images_and_pdfs_in_each_providers_shape(invoke, server, tmp_path, provider):
    (tmp_path / "shot.dat").write_bytes(png_bytes())  # the type comes from the bytes, not the name
    (tmp_path / "report.pdf").write_bytes(pdf_bytes())
    r = invoke("-m", f"{provider}:echo", "-a", str(tmp_path / "shot.dat"), "-a", str(tmp_path / "report.pdf"), "look",
            "--no-cache")  # the blocks as they are, without a prompt-cache mark (test_prompt_cache.py)
    assert r.code == 0, r.stderr
    assert "attached: shot.dat (image/png" in r.stderr
    png64, pdf64 = base64.b64encode(png_bytes()).decode(), base64.b64encode(pdf_bytes()).decode()
    content = last_user_content(server)
    if provider == "anthropic":
        assert content == [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png64}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf64}},
            {"type": "text", "text": "look"},
        ]
    else:
        assert content == [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png64}"}},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{pdf64}"}},
        ]


def test_file_names_that_are_not_utf8_are_labeled_not_fatal(run, server, tmp_path):
    """A Linux file name is bytes; a latin-1 one (caf\\xe9.txt) in a -f directory or given to -f or -a
    failed the turn as "internal error: UnicodeEncodeError". The file is read and sent; its label
    shows the byte as U+FFFD, in the request and the log."""
    import os

    folder = os.fsencode(tmp_path)
    os.mkdir(folder + b"/dir")
    for name in (b"/dir/caf\xe9.txt", b"/caf\xe9.txt"):  # in a directory, and named
        with open(folder + name, "wb") as f:
            f.write(b"hello from a latin-1 name\n")
    with open(folder + b"/shot\xe9.png", "wb") as f:
        f.write(png_bytes())
    r = run("-m", "openai:echo", "-f", folder + b"/dir", "-f", folder + b"/caf\xe9.txt",
            "-a", folder + b"/shot\xe9.png", "look")
    assert r.code == 0, r.stderr
    text = last_user_content(server)[0]["text"]
    assert text.count('caf\ufffd.txt">\nhello from a latin-1 name\n</source>') == 2
    assert "attached: shot\ufffd.png" in r.stderr
    assert "caf\ufffd.txt" in run("history", "show", "1").out


def test_escape_sequences_and_newlines_in_file_names_do_not_reach_the_terminal(invoke, server, tmp_path):
    """-f DIR's summary line and -a's "attached:" line printed file names raw: a file named
    with OSC 52 wrote the clipboard, one with a newline drew a line of its own ("error: …").
    Both lines are one line, escape sequences shown as control pictures."""
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "\x1b]52;c;ZXZpbA==\x07a.txt").write_text("text a\n")
    (folder / "b\nerror: fake.txt").write_text("text b\n")
    (folder / "\x1b[2Jc.bin").write_bytes(b"\x00binary")
    (tmp_path / "\x1b]0;title\x07shot.png").write_bytes(png_bytes())
    r = invoke("-m", "openai:echo", "-f", str(folder), "-a", str(tmp_path / "\x1b]0;title\x07shot.png"), "look")
    assert r.code == 0, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert not any(line.startswith("error") for line in lines), r.stderr
    included = next(line for line in lines if line.startswith("included: "))
    assert "\u241b]52;c;ZXZpbA==\u2407a.txt" in included and "b\u240aerror: fake.txt" in included
    assert "\u241b[2Jc.bin (binary)" in included
    assert "attached: \u241b]0;title\u2407shot.png" in r.stderr


def test_errors_about_a_file_name_that_is_not_utf8_show_it_readably(run, server, tmp_path):
    """-f's error lines named a latin-1 file as Python escapes it ("caf\\udce9.bin"); they show
    the byte as U+FFFD, as the labels and -a's lines do."""
    import os

    folder = os.fsencode(tmp_path)
    with open(folder + b"/caf\xe9.bin", "wb") as f:
        f.write(b"\x00\x01binary")
    with open(folder + b"/caf\xe9.txt", "wb") as f:
        f.write(b"caf\xe9 in latin-1\n")
    for name, says in ((b"caf\xe9.bin", "is a binary file"), (b"caf\xe9.txt", "is not valid UTF-8 (byte 3)"),
                       (b"gone\xe9.txt", "no such file or directory")):
        r = run("-m", "openai:echo", "-f", folder + b"/" + name, "look")
        assert r.code == 2 and says in r.stderr, r.stderr
        assert "\\udc" not in r.stderr and name.decode("latin-1").replace("\xe9", "\ufffd") in r.stderr, r.stderr


def test_attachments_from_pipes_and_devices(invoke, server, tmp_path):
    """-a <(curl …) names a pipe: it was refused as "not a file". It is read, up to the 32 MB cap."""
    import os

    fifo = tmp_path / "shot"
    os.mkfifo(fifo)
    threading.Thread(target=lambda: fifo.write_bytes(png_bytes()), daemon=True).start()
    r = invoke("-m", "openai:echo", "-a", str(fifo), "what is this?")
    assert r.code == 0 and "attached: shot" in r.stderr, r.stderr
    assert last_user_content(server)[1]["type"] == "image_url"
    r = invoke("-m", "openai:echo", "-a", "/dev/zero", "q")
    assert r.code == 2 and "/dev/zero is larger than 32 MB" in r.stderr, r.stderr  # not an endless read
    r = invoke("-m", "openai:echo", "-a", str(tmp_path), "q")
    assert r.code == 2 and "is a directory" in r.stderr, r.stderr


def test_attachments_are_resent_by_continue_and_stored_once(invoke, server, tmp_path, home):
    (tmp_path / "a.png").write_bytes(png_bytes())
    assert invoke("-m", "openai:echo", "-a", str(tmp_path / "a.png"), "first").code == 0
    assert invoke("-m", "openai:echo", "-a", str(tmp_path / "a.png"), "-c", "second").code == 0
    assert invoke("-c", "third").code == 0
    first, _, second, _, third = server.last_messages()
    assert first["content"][1]["type"] == "image_url" and second["content"][1]["type"] == "image_url"
    assert third == {"role": "user", "content": "third"}
    import sqlite3

    assert sqlite3.connect(home / "log.db").execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1
    exported = json.loads(invoke("history", "export", "1", "--format", "json").out)
    assert exported["messages"][0]["attachments"][0]["mime"] == "image/png"


def test_unknown_types_and_text_only_models_send_nothing(invoke, server, tmp_path):
    (tmp_path / "notes.txt").write_text("plain text")
    r = invoke("-m", "openai:echo", "-a", str(tmp_path / "notes.txt"), "q")
    assert r.code == 2 and "not a PNG, JPEG, GIF, WebP or PDF" in r.stderr
    (tmp_path / "a.png").write_bytes(png_bytes())
    pytest.importorskip("llama_cpp")
    r = invoke("-m", "local", "-a", str(tmp_path / "a.png"), "q")
    assert r.code == 4 and "cannot take images" in r.stderr
    assert not server.requests


def test_repl_file_and_attach_commands(repl, server, tmp_path):
    (tmp_path / "notes.md").write_text("remember this")
    (tmp_path / "a.png").write_bytes(png_bytes())
    child = repl("-m", "openai:echo")
    child.sendline(f"/file {tmp_path / 'notes.md'}")
    child.expect_exact("included:")
    child.sendline(f"/attach {tmp_path / 'a.png'}")
    child.expect_exact("attached: a.png")
    child.sendline("what is this")
    child.expect_exact("echo: ")
    content = last_user_content(server)
    assert content[0]["type"] == "text" and "remember this" in content[0]["text"]
    assert content[1]["type"] == "image_url"



def test_tab_completes_paths_after_attach(repl, server, tmp_path):
    (tmp_path / "screenshot-unique.png").write_bytes(png_bytes())
    child = repl("-m", "openai:echo")
    child.send(f"/attach {tmp_path}/screensh\t")
    child.expect_exact("ot-unique.png")
