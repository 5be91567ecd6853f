"""Tab completion in a real bash (pexpect drives `bash --norc` with `streamchat completion bash`
sourced): options in every position, and `provider:model` although bash splits words at `:`."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest
from conftest import STREAMCHAT, base_env

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture
def bash(home, server, tmp_path):
    cfg = tmp_path / "models.toml"
    cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\ndefault_model = "zz-model"\n')
    env = base_env(home, server, STREAMCHAT_CONFIG=str(cfg), INPUTRC="/dev/null",
                   PATH=f"{Path(STREAMCHAT).parent}:{os.environ['PATH']}")
    script = tmp_path / "streamchat.bash"
    script.write_text(subprocess.run([STREAMCHAT, "completion", "bash"], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    child = pexpect.spawn("bash", ["--norc", "--noprofile"], env=env, encoding="utf-8", dimensions=(30, 200),
                          timeout=30)
    child.logfile_read = io.StringIO()
    child.sendline(f"source {script}; PS1='$ '")
    child.expect_exact("$ ")
    yield child
    child.close(force=True)


def completed(child: pexpect.spawn, typed: str, line: str) -> str:
    """The command line after typing `typed` and one Tab (which should make it `line`): echoed back
    by `echo @@ …`."""
    child.send(typed + "\t")
    child.expect_exact(line[len(typed):])  # the shell inserted the rest (keys typed sooner may be dropped)
    child.send("\x01" + "echo @@ " + "\r")  # Ctrl-A: the line's start
    child.expect(r"[\r\n]@@ ([^\r\n]*)\r?\n")  # the output, not the echoed command (`echo @@`)
    return str(child.match.group(1)).rstrip()


@pytest.mark.parametrize(("typed", "line"), [
    ("streamchat --st", "streamchat --stats"),  # an option of chat's before any prompt word
    ("streamchat -m compat:zz-model --tim", "streamchat -m compat:zz-model --timeout"),  # after a global option
    ("streamchat -m compat:", "streamchat -m compat:zz-model"),  # bash split the word at ':'
    ("streamchat -m compat:z", "streamchat -m compat:zz-model"),
    ("streamchat --model=compat:", "streamchat --model=compat:zz-model"),  # and at '='
    ("streamchat hello --st", "streamchat hello --stats"),
    ("streamchat --role=sh", "streamchat --role=shell"),  # a value of chat's option before any prompt word
])
def test_bash_completes_options_anywhere_and_provider_model_names(bash, typed, line):
    assert completed(bash, typed, line) == line


def test_completion_imports_no_provider_sdk(home, server):
    """A Tab press starts Python: it must not pay for (or depend on) the provider SDKs."""
    env = base_env(home, server, _STREAMCHAT_COMPLETE="complete_bash", _TYPER_COMPLETE_ARGS="streamchat -m op",
                   PYTHONPROFILEIMPORTTIME="1")
    done = subprocess.run([STREAMCHAT], env=env, capture_output=True, text=True, timeout=30)
    assert "openai:gpt-4o-mini" in done.stdout.split()
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert not {"openai", "anthropic", "httpx", "llama_cpp"} & imported


def test_the_typer_internals_completion_uses_are_there():
    """init_completion reaches into Typer (no public API for shell classes and scripts): an
    upgrade that moves them fails here, not at a user's Tab press."""
    from typer import _completion_shared
    from typer._click.shell_completion import get_completion_class

    from streamchat.cli._completion import BASH_SCRIPT, init_completion

    init_completion()
    assert _completion_shared.get_completion_script(prog_name="streamchat", complete_var="_X", shell="bash") == \
        (BASH_SCRIPT % {"complete_func": "_streamchat_completion", "prog_name": "streamchat",
                        "autocomplete_var": "_X"}).strip()
    bash_class = get_completion_class("bash")
    assert bash_class is not None and bash_class.__name__ == "LineBashComplete"


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_completes_provider_model_names(home, server, tmp_path):
    cfg = tmp_path / "models.toml"
    cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\ndefault_model = "zz-model"\n')
    env = base_env(home, server, STREAMCHAT_CONFIG=str(cfg), PATH=f"{Path(STREAMCHAT).parent}:{os.environ['PATH']}")
    script = tmp_path / "_streamchat"
    script.write_text(subprocess.run([STREAMCHAT, "completion", "zsh"], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    child = pexpect.spawn("zsh", ["-f"], env=env, encoding="utf-8", dimensions=(30, 200), timeout=30)
    try:
        child.sendline(f"autoload -Uz compinit && compinit -u; source {script}; PS1='ZP> '")
        child.expect(r"(?<!')ZP> ")  # the prompt, not the command's echo
        for typed, line in (("streamchat --st", "streamchat --stats"), ("streamchat -m compat:", "streamchat -m compat:zz-model"),
                            ("streamchat --model=compat:", "streamchat --model=compat:zz-model")):
            assert completed(child, typed, line) == line
    finally:
        child.close(force=True)


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_completes_provider_model_names(home, server, tmp_path):
    cfg = tmp_path / "models.toml"
    cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\ndefault_model = "zz-model"\n')
    env = base_env(home, server, STREAMCHAT_CONFIG=str(cfg), PATH=f"{Path(STREAMCHAT).parent}:{os.environ['PATH']}")
    script = tmp_path / "streamchat.fish"
    script.write_text(subprocess.run([STREAMCHAT, "completion", "fish"], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    for typed, candidate in (("streamchat --st", "--stats"), ("streamchat -m compat:", "compat:zz-model"),
                             ("streamchat --model=compat:", "--model=compat:zz-model")):
        done = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C'{typed}'"], env=env,
                              capture_output=True, text=True, timeout=30)
        assert candidate in [line.split("\t")[0] for line in done.stdout.splitlines()], (typed, done.stdout)
