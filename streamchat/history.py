"""`streamchat history`: list, show, export, remove and search logged conversations; the votes' leaderboard."""

from __future__ import annotations

import json
import time
from typing import Any

from streamchat.config import Settings
from streamchat.conversation import Conversation
from streamchat.cost import money
from streamchat.environment import Environment
from streamchat.errors import UsageError
from streamchat.leaderboard import leaderboard
from streamchat.render.sanitize import sanitize
from streamchat.store import ConversationLog, open_log
from streamchat.ui import UI


class History:
    """The history subcommands over one log, writing to the given environment."""

    def __init__(self, settings: Settings, env: Environment, ui: UI) -> None:
        self.env = env
        self.ui = ui
        self.code_theme = settings.code_theme
        self.log: ConversationLog = open_log(enabled=True, warn=ui.warn, required=True)
        if self.log.db is None:
            raise UsageError("the conversation log is not available", hint="check STREAMCHAT_DB and the warning above")

    def list_recent(self, limit: int, since: str | None = None) -> None:
        start = time.time() - duration(since) if since else None
        rows = self.log.recent(limit, start)
        if not rows:  # said on stderr, so a script reading stdout still gets nothing
            self.ui.notice(f"no conversations since {since}" if since else
                           "no conversations logged yet (each answer is logged unless --no-log or log = false)")
            return
        out = self.env.stdout
        count, cost, unknown = self.log.tally(start)
        total = (f"{count} conversations{f' since {since}' if since else ''}: total {money(cost)}"
                 + (" (some prices unknown)" if unknown else "")
                 + (f"; the latest {len(rows)} shown (-n {count} for all)" if count > len(rows) else ""))
        if not self.env.stdout_isatty:
            for r in rows:
                out.write(f"{r['id']}\t{_when(r['updated_at'])}\t{r['provider']}:{r['model']}\t{r['turns']}\t{r['title']}"
                          f"\t{r['name'] or ''}\t{money(r['cost'])}\n")
            if since or count > len(rows):  # on stderr: the page a script reads is only the rows
                self.ui.notice(total)
            return
        from rich.console import Console
        from rich.table import Table

        named = any(r["name"] for r in rows)  # the column only when some conversation has a name
        table = Table("id", *(["name"] if named else []), "when", "model", "turns", "first words", "cost", box=None,
                      header_style="bold")
        for r in rows:
            table.add_row(str(r["id"]), *([_text(r["name"] or "")] if named else []), _when(r["updated_at"]),
                          _text(f"{r['provider']}:{r['model']}"), str(r["turns"]), _text(r["title"] or ""),
                          money(r["cost"]))
        table.caption = _text(total)
        Console(file=out, no_color=self.env.no_color).print(table)

    def markdown(self, cid: str) -> str:
        """The transcript, with every answer of a question that has several (a race's, /retry's), and
        each question asked at a point the conversation did not go on from (one that failed), where it was asked."""
        conv = self.log.load(cid)
        found = {t.id: self.log.siblings(conv, t) for t in conv.turns if t.id is not None}
        return conv.transcript(_title(conv), {k: v[0] for k, v in found.items()}, {k: v[1] for k, v in found.items()})

    def show(self, cid: str) -> None:
        text = self.markdown(cid)
        if self.env.stdout_isatty and not self.env.dumb:
            from rich.console import Console

            from streamchat.render.markdown_stream import parse

            Console(file=self.env.stdout, no_color=self.env.no_color).print(
                parse(sanitize(text), self.code_theme))
        else:
            self.env.stdout.write(text)

    def export(self, cid: str, fmt: str) -> None:
        if fmt == "json":
            text = json.dumps(self.log.export(cid), ensure_ascii=False, indent=2) + "\n"
        elif fmt == "md":
            text = self.markdown(cid)
        else:
            raise UsageError(f"unknown format '{fmt}'", hint="use --format md or --format json")
        # Stored model text may hold escape sequences: a terminal gets them shown, a file the exact bytes.
        self.env.stdout.write(sanitize(text) if self.env.stdout_isatty else text)

    def remove(self, cids: list[str]) -> None:
        for cid in cids:
            self.log.load(cid)  # every id must exist before any is removed
        for cid in cids:
            self.log.remove(cid)
            self.env.stderr.write(f"removed conversation {cid}\n")

    def rename(self, cid: str, name: str) -> None:
        self.log.rename(cid, name)
        self.ui.notice(f"conversation {self.log.load(name).id} is now named {name}")

    def pick(self, number: int, cid: str | None) -> None:
        """`streamchat pick N`: `-c` continues answer N of the last question (a race's, in -m order)."""
        conv = self.log.pick(continue_last=cid is None, cid=cid)
        if conv.id is None:
            raise UsageError("there is no conversation to pick an answer in", hint="ask a race first: streamchat -m A -m B \"…\"")
        switched = self.log.switch(conv, number)
        if switched is None:
            raise UsageError(f"the last question of conversation {conv.id} has one answer; there is nothing to pick",
                             hint="a race (-m A -m B) or /retry gives a question several answers")
        last = conv.last
        assert last is not None
        self.ui.notice(f"conversation {conv.id} continues answer {switched[0]} of {switched[1]}"
                       f" ({last.model or '?'}): streamchat -c \"…\"")

    def search(self, text: str, limit: int) -> None:
        if not text.strip():
            raise UsageError("history search needs words to find", hint='e.g. streamchat history search "docker compose"')
        rows = self.log.search(text, limit)
        if not rows:
            self.ui.notice(f"no logged message matches {text!r}")
        for r in rows:
            self.env.stdout.write(f"{r['conversation_id']}\t{r['role']}\t{sanitize(' '.join(r['snippet'].split()))}\n")

    def votes(self, as_json: bool) -> None:
        """The leaderboard of every stored vote: a table on a terminal, tab-separated rows when piped."""
        votes = self.log.votes()
        board = leaderboard(votes)
        out = self.env.stdout
        if as_json:
            out.write(json.dumps([s.as_dict() for s in board], ensure_ascii=False, indent=2) + "\n")
        if not board:  # said on stderr: stdout stays empty (or `[]`) for a script
            self.ui.notice("no votes yet: compare models on serve's page (streamchat serve, then compare mode) and vote")
            return
        if as_json:
            return
        if not self.env.stdout_isatty:
            for s in board:
                out.write(f"{s.model}\t{s.wins}\t{s.losses}\t{s.ties}\t{s.win_rate:.3f}\t{s.votes}\n")
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("model", "wins", "losses", "ties", "win rate", "votes", box=None, header_style="bold")
        for s in board:
            table.add_row(_text(s.model), str(s.wins), str(s.losses),
                          f"{s.ties} ({s.both_bad} both bad)" if s.both_bad else str(s.ties),
                          f"{s.win_rate:.0%}", str(s.votes))
        blind = sum(v.blind for v in votes)
        table.caption = f"{len(votes)} votes, {blind} blind"
        Console(file=out, no_color=self.env.no_color).print(table)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """`7d`, `12h`, `30m`, `2w` → seconds."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise UsageError(f"'{text}' is not a duration", hint="use a number and s, m, h, d or w, e.g. --since 7d")
    return int(number) * _UNITS[unit]


def _text(logged: str) -> Any:
    """Logged text for a Rich table cell: sanitized, and as a Text, which Rich never reads as markup
    (a question holding `[/]` was a MarkupError, `[link=…]` a hyperlink)."""
    from rich.text import Text

    return Text(sanitize(logged))


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _title(conv: Conversation) -> str:
    name = f" ({conv.name})" if conv.name else ""
    return f"Conversation {conv.id}{name} — {conv.model or '?'} — {_when(conv.created_at)}"
