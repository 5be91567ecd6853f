"""`streamchat plugins`: the installed plugins and what each registers, from metadata alone."""

from __future__ import annotations

from typing import Annotated

import typer

from streamchat.cli._app import DebugOpt, _globals, app, error_boundary


@app.command("plugins", help="List installed plugins, their versions and what they register (none is imported).",
             short_help="List installed plugins.")
def plugins(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    debug: DebugOpt = False,
) -> None:
    import json

    from streamchat.environment import Environment
    from streamchat.plugins import describe, installed
    from streamchat.render.sanitize import sanitize
    from streamchat.ui import UI

    env = Environment()
    ui = UI(env)
    with error_boundary(ui, _globals(ctx).merge(debug=debug).debug):  # no config needed: a broken one cannot hide them
        found = installed()
        if json_out:
            env.stdout.write(json.dumps(found, indent=2) + "\n")
        elif not found:
            ui.notice("no plugins installed — see README, Writing a plugin")
        for plugin in [] if json_out else found:
            env.stdout.write("".join(sanitize(line) + "\n" for line in describe(plugin)))
        env.stdout.flush()
