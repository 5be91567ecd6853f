"""The libraries' private parts streamchat reaches into, each behind one function, pinned here against the
installed versions: an upgrade that changes one fails this file, naming the function to fix, instead of
breaking an answer on a user's terminal (pyproject bounds those libraries below their next major)."""

from __future__ import annotations

import inspect

import httpx2
import pytest
from rich.markdown import CodeBlock, ListItem, Markdown
from typer.core import TyperArgument

from streamchat.config import ProviderConfig
from streamchat.errors import RateLimitError
from streamchat.providers._sdk import error_body, import_sdk, status_error
from streamchat.render.code_render import FastCodeBlock
from streamchat.render.markdown_stream import LineRenderer, NumberedItem, StreamMarkdown, parse

SAMPLE = ("# Title\n\n1. one\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ `x` (c) -- https://example.com\n\n"
          "```py\nx = 1\n```\n\n    indented\n")


# -- Rich's Markdown: render/markdown_stream.py (StreamMarkdown.__init__, NumberedItem), render/code_render.py

def test_stream_markdown_holds_the_state_richs_markdown_constructor_sets():
    """StreamMarkdown.__init__ sets Markdown's attributes itself (it adopts tokens instead of parsing):
    Rich adding, renaming or dropping one must fail here."""
    richs = Markdown(SAMPLE, code_theme="ansi_dark", hyperlinks=False)
    ours = parse(SAMPLE, "ansi_dark")
    assert set(vars(ours)) == set(vars(richs))
    for name in set(vars(richs)) - {"markup", "parsed"}:
        assert getattr(ours, name) == getattr(richs, name), name


def test_our_parser_is_the_one_richs_markdown_builds():
    """markdown_stream's parser must give the tokens Rich's own Markdown parses (the same plugins)."""
    def shape(markdown: Markdown) -> list[tuple[str, object, str, list[str]]]:
        return [(t.type, t.map, t.content, [c.content for c in t.children or []]) for t in markdown.parsed]

    assert shape(parse(SAMPLE)) == shape(Markdown(SAMPLE))


def test_the_elements_we_replace_are_richs_with_the_same_hooks():
    """StreamMarkdown replaces Rich's list item and code blocks by subclassing them: the entries and the
    hooks overridden (ListItem.render_number, CodeBlock's lexer_name/theme/text) must still be Rich's."""
    assert Markdown.elements["list_item_open"] is ListItem
    assert Markdown.elements["fence"] is CodeBlock and Markdown.elements["code_block"] is CodeBlock
    assert inspect.signature(NumberedItem.render_number) == inspect.signature(ListItem.render_number)
    assert all(isinstance(element.new_line, bool) for element in StreamMarkdown.elements.values())  # _owes_separator
    fence = next(t for t in parse(SAMPLE).parsed if t.type == "fence")
    block = FastCodeBlock.create(parse(SAMPLE), fence)
    assert (block.lexer_name, block.theme) == ("py", "ansi_dark")


def test_numbered_items_and_code_render_through_richs_elements():
    """The overrides above are called by Rich's list and get the code block's text (`self.text`)."""
    lines = LineRenderer(color_system=None).render(parse("1. one\n2. two\n\n```py\nx = 1\n```\n"), 40)
    assert [line.strip() for line in lines if line.strip()] == ["1. one", "2. two", "x = 1"]


# -- the SDKs: providers/_sdk.py status_error

@pytest.mark.parametrize("sdk,client_class,provider_type", [("openai", "OpenAI", "openai"),
                                                             ("anthropic", "Anthropic", "anthropic")])
def test_status_error_is_the_sdks_own_exception(sdk, client_class, provider_type):
    """astream builds the SDK's exception for an error status with its private
    `_make_status_error_from_response`; map_error must read it as it reads create()'s."""
    from streamchat.providers.base import get_provider

    module = import_sdk(sdk)
    client = getattr(module, client_class)(api_key="k", base_url="http://127.0.0.1:9")
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    response = httpx2.Response(429, json=body, headers={"retry-after": "3"},
                               request=httpx2.Request("POST", "http://127.0.0.1:9/v1/messages"))
    err = status_error(client, response)
    assert isinstance(err, module.RateLimitError) and err.status_code == 429
    assert error_body(err)[:2] == ("slow down", "rate_limit_error")
    provider = get_provider(ProviderConfig(f"internals-{sdk}", provider_type, base_url="http://127.0.0.1:9", api_key="k"))
    mapped = provider.map_error(err, model="m", started=False)
    assert isinstance(mapped, RateLimitError) and mapped.retry_after == 3


# -- Typer: cli/_app.py (_PlainArgument), cli/__init__.py (completion_init)

def test_typer_hooks_we_override_or_call_exist():
    """_PlainArgument overrides TyperArgument's private `_usage_display_name`; main() calls
    `typer._completion_classes.completion_init` on a Tab press."""
    from typer._completion_classes import completion_init

    assert callable(getattr(TyperArgument, "_usage_display_name", None))
    assert not inspect.signature(TyperArgument._usage_display_name).parameters.keys() - {"self"}
    assert callable(completion_init)


def test_the_lazy_group_converts_each_command_as_typer_does():
    """cli._lazy_group converts each subcommand with Typer's own get_command_from_info /
    get_group_from_info when it is first asked for: every command's help (and so its options) is
    the one Typer's whole conversion gives, and a Typer without those functions is noticed here."""
    import typer
    from typer._click import Context

    from streamchat.cli import LazyCommands, _lazy_group, _plain
    from streamchat.cli._app import app

    lazy = _lazy_group()
    assert lazy is not None and isinstance(lazy.commands, LazyCommands)
    eager = _plain(typer.main.get_command(app))
    assert list(lazy.commands) == list(eager.commands)
    assert lazy.commands.built == []
    for name in eager.commands:
        theirs, ours = eager.commands[name], lazy.commands[name]
        assert type(ours) is type(theirs)
        assert [p.opts for p in ours.params] == [p.opts for p in theirs.params], name
        assert ours.get_help(Context(ours, info_name=name)) == theirs.get_help(Context(theirs, info_name=name))
    root = Context(lazy, info_name="streamchat")
    assert lazy.get_help(root) == eager.get_help(Context(eager, info_name="streamchat"))


def test_a_chat_converts_only_the_chat_command(home, server):
    """A one-shot (or the REPL) converts `chat` alone, not the 26 other commands and groups (#34)."""
    import subprocess
    import sys

    from conftest import base_env

    probe = """
import sys
from streamchat.cli import _command
command = _command()
command.main(args=sys.argv[1:], prog_name="streamchat", standalone_mode=False)
sys.stderr.write("BUILT:" + ",".join(command.commands.built))
"""
    done = subprocess.run([sys.executable, "-c", probe, "-m", "openai:echo", "q"], env=base_env(home, server),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.stdout == "echo: q\n" and done.stderr.rsplit("BUILT:", 1)[1] == "chat"


# -- uvicorn: serve/protocol.py (HeaderTimeoutH11Protocol, HeaderTimeoutHttpToolsProtocol)

@pytest.mark.parametrize("theirs", ["h11_impl:H11Protocol", "httptools_impl:HttpToolsProtocol"])
def test_uvicorns_http_protocols_still_have_what_the_header_deadline_overrides_and_reads(theirs):
    """serve/protocol.py subclasses uvicorn's H11Protocol and HttpToolsProtocol (not public API):
    the methods it overrides keep their parameters, the state it reads (`cycle`, `loop`,
    `transport`) is there, and a response's end calls `on_response_complete`, where the deadline
    is armed again for the next request's headers."""
    import asyncio
    import importlib

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from streamchat.serve import protocol as ours_module

    module, name = theirs.split(":")
    base = getattr(importlib.import_module(f"uvicorn.protocols.http.{module}"), name)
    ours = next(cls for cls in (ours_module.HeaderTimeoutH11Protocol, ours_module.HTTP_PROTOCOL) if base in cls.__mro__)
    for method in ("connection_made", "data_received", "on_response_complete", "handle_websocket_upgrade",
                   "connection_lost"):
        assert list(inspect.signature(getattr(ours, method)).parameters) == list(
            inspect.signature(getattr(base, method)).parameters), method
    assert "on_response=self.on_response_complete" in inspect.getsource(base)

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    async def build() -> asyncio.Protocol:
        config = Config(app=app, log_config=None)
        config.load()
        return ours(config=config, server_state=ServerState(), app_state={})

    protocol = asyncio.run(build())
    assert protocol.cycle is None and isinstance(protocol.loop, asyncio.AbstractEventLoop)
    assert hasattr(protocol, "transport")


# -- rich: config.py (RICH_CODE_THEMES)

def test_the_code_themes_config_accepts_without_pygments_are_richs_own():
    """config.py checks `code_theme` without importing Rich (settings never load the renderer), so
    it names Rich's own themes itself: they must be the ones Rich has."""
    from rich.syntax import RICH_SYNTAX_THEMES

    from streamchat.config import RICH_CODE_THEMES

    assert set(RICH_CODE_THEMES) == set(RICH_SYNTAX_THEMES)


def test_an_in_process_run_detaches_only_its_own_streams(monkeypatch, tmp_path):
    """A host that swaps sys.stdout during an in-process run (pytest's capture does) keeps its stream:
    the run detached whatever sys.stdout was at its end, here the host's, and the suite run without
    xdist then failed every later test with "underlying buffer has been detached"."""
    import io
    import sys

    import streamchat.config
    from streamchat.cli import main

    host = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    def swapping_config_path():
        sys.stdout = host  # the host's own stream, set while the command runs
        return tmp_path / "config.toml"

    monkeypatch.setattr(streamchat.config, "default_config_path", swapping_config_path)
    before = sys.stdout, sys.stderr
    code = main(["config", "path"], {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}, stdout=io.BytesIO())
    assert code == 0 and (sys.stdout, sys.stderr) == before
    host.write("still usable")
    host.flush()
    assert host.buffer.getvalue().endswith(b"still usable")
