"""`completion`: Typer's shell scripts for bash, zsh and fish."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from streamchat.cli._app import COMPLETE_VAR, SHELLS, app


@app.command("completion", help="Print the shell completion script (bash, zsh or fish), or install it.")
def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", show_default=False, help="bash, zsh or fish.")],
    install: Annotated[bool, typer.Option("--install", help="Add it to the shell's startup files.")] = False,
) -> None:
    from typer import _completion_shared  # Typer's own scripts and installer (no public API for them)

    if shell not in SHELLS:
        raise typer.BadParameter(f"must be one of {', '.join(SHELLS)}", param_hint="SHELL")
    if install:
        path = _completion_shared.install(shell=shell, prog_name="streamchat", complete_var=COMPLETE_VAR)[1]
        print(f"installed {shell} completion in {path}; open a new shell to use it", file=sys.stderr)
        return
    print(_completion_shared.get_completion_script(prog_name="streamchat", complete_var=COMPLETE_VAR, shell=shell))
