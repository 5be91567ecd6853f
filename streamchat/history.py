"""`streamchat history`: list, show, export, remove and search logged conversations."""

from __future__ import annotations

import json
import time
from typing import Any

from streamchat.environment import Environment
from streamchat.errors import UsageError
from streamchat.render.sanitize import sanitize
from streamchat.store import ConversationLog, open_log


def _log(settings) -> ConversationLog:
    from streamchat.ui import UI

    log = open_log(settings, enabled=True, warn=UI(Environment()).warn)
    if log.db is None:
        raise UsageError("the conversation log is not available", hint="check STREAMCHAT_DB and the warning above")
    return log


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def as_markdown(conv: dict[str, Any]) -> str:
    """A conversation as a Markdown transcript (shared by `show` and `export --format md`)."""
    parts = [f"# Conversation {conv['id']} — {conv['provider']}:{conv['model']} — {_when(conv['created_at'])}\n"]
    if conv.get("system"):
        parts.append(f"**System:** {conv['system']}\n")
    for m in conv["messages"]:
        mark = "" if m["state"] == "ok" else f" _[{m['state']}{': ' + m['error'] if m['error'] else ''}]_"
        parts.append(f"## {m['role'].capitalize()}{mark}\n\n{m['content']}\n")
    return "\n".join(parts)


def list_recent(settings, env: Environment, limit: int) -> None:
    rows = _log(settings).recent(limit)
    if not env.stdout_isatty:
        for r in rows:
            env.stdout.write(f"{r['id']}\t{_when(r['updated_at'])}\t{r['provider']}:{r['model']}\t{r['turns']}\t{r['title']}\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "when", "model", "turns", "first words", box=None, header_style="bold")
    for r in rows:
        table.add_row(str(r["id"]), _when(r["updated_at"]), f"{r['provider']}:{r['model']}", str(r["turns"]),
                      sanitize(r["title"] or ""))
    Console(file=env.stdout, no_color=env.no_color).print(table)


def show(settings, env: Environment, cid: str) -> None:
    text = as_markdown(_log(settings).export(cid))
    if env.stdout_isatty and not env.dumb:
        from rich.console import Console

        from streamchat.render.markdown_stream import parse

        Console(file=env.stdout, no_color=env.no_color).print(parse(sanitize(text)))
    else:
        env.stdout.write(text)


def export(settings, env: Environment, cid: str, fmt: str) -> None:
    conv = _log(settings).export(cid)
    if fmt == "json":
        env.stdout.write(json.dumps(conv, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "md":
        env.stdout.write(as_markdown(conv))
    else:
        raise UsageError(f"unknown format '{fmt}'", hint="use --format md or --format json")


def remove(settings, env: Environment, cid: str) -> None:
    _log(settings).remove(cid)
    env.stderr.write(f"removed conversation {cid}\n")


def search(settings, env: Environment, text: str, limit: int) -> None:
    for r in _log(settings).search(text, limit):
        env.stdout.write(f"{r['conversation_id']}\t{r['role']}\t{sanitize(' '.join(r['snippet'].split()))}\n")
