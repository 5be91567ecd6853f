"""The REPL's slash commands, in one registry: a command is one function registered with
`@command(NAME, ARGS, TEXT)`, taking the `Repl` and the text after its name.

`/help` lists the registry in order and Tab completes from it; `Repl.handle` (repl.py, the
input loop) looks a typed command up here. A command reads and changes the REPL's state
(`repl.session`, the sources and attachments waiting for the next question, /set values) and
speaks through `repl.ui`; it asks through `repl.ask`, as a typed question does.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from streamchat import clipboard
from streamchat.chat import gather_inputs
from streamchat.cost import money
from streamchat.errors import UsageError
from streamchat.events import TextDelta
from streamchat.paths import user_path
from streamchat.private_files import write_named
from streamchat.providers.options import REASONING
from streamchat.render.code_blocks import CodeBlock, code_blocks
from streamchat.render.sanitize import sanitize
from streamchat.service import Overrides
from streamchat.ui import byte_size, plural

if TYPE_CHECKING:  # the loop imports this module: the type only, no import cycle at run time
    from streamchat.repl import Repl
    from streamchat.tools import Toolbox

ALIASES = {"/quit": "/exit", "/save!": "/save", "/save-code!": "/save-code"}


class Command(NamedTuple):
    run: Callable[[Repl, str], None]
    args: str  # its usage after the name, e.g. "N FILE"
    text: str  # what it does (/help, and beside the name when Tab completes it)


COMMANDS: dict[str, Command] = {}  # in /help's order: the order they are defined below

Run = Callable[["Repl", str], None]


def command(name: str, args: str, text: str) -> Callable[[Run], Run]:
    """Register `run` as the slash command `name` (`args`: its usage after the name; `text`: what it does)."""
    def register(run: Run) -> Run:
        COMMANDS[name] = Command(run, args, text)
        return run
    return register


def lookup(name: str) -> Command | None:
    """The command typed as `name` (an alias too), or None."""
    return COMMANDS.get(ALIASES.get(name, name))


def clip(text: str, width: int = 40) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def set_label(chosen: dict[str, str], reasoning: str | None) -> str:
    """The toolbar's part for /set values and the reasoning level: ` · top_p=0.5 · reasoning high`."""
    label = "".join(f" · {name}={clip(value, 20)}" for name, value in chosen.items())
    return label + (f" · reasoning {reasoning}" if reasoning else "")


def with_set(base: Overrides, chosen: dict[str, str], reasoning: str | None) -> Overrides:
    """The flags' and role's Overrides with the REPL's /set values and /reasoning over them.
    temperature and max_tokens are checked as the flags are; the rest are provider options (as -o),
    checked against the model's provider when the session takes them."""
    from streamchat.providers.options import SAMPLING, Text, check

    sampling = dict(check(SAMPLING, ((k, Text(v)) for k, v in chosen.items() if k in SAMPLING),
                          provider="/set", where="/set"))
    params = base.params + tuple((k, Text(v)) for k, v in chosen.items() if k not in SAMPLING)
    return replace(base, temperature=sampling.get("temperature", base.temperature), params=params,
                   max_tokens=sampling.get("max_tokens", base.max_tokens), reasoning=reasoning or base.reasoning)


def _block(repl: Repl, number: str, usage: str, instead: str) -> CodeBlock | None:
    """Code block N (1-based) of the last answer, or None after saying why (`usage`: the command's form,
    `instead`: what takes the whole answer). A block the answer ended inside is refused, as -x refuses
    it: half a command must not be pasted or saved as if it were whole."""
    last = repl.session.last
    blocks = code_blocks(last.result.text) if last is not None else []
    if not number.isdigit():
        repl.ui.notice(sanitize(f"'{number}' is not a number: {usage}, N a code block's number (1 is the first)"))
        return None
    if not 1 <= int(number) <= len(blocks):
        repl.ui.notice(f"no code block {number} in the last answer" + (f" (it has {len(blocks)})" if blocks else ""))
        return None
    block = blocks[int(number) - 1]
    if not block.closed:
        repl.ui.notice(f"code block {number} is unfinished: the answer ended inside it, so it may be cut short "
                       f"— /continue may finish it; {instead}")
        return None
    return block


def _pending(repl: Repl) -> None:
    """`/file` or `/attach` alone: what waits for the next question, and how to drop it."""
    if repl.sources:
        repl.ui.notice(sanitize(f"sources for the next question: {', '.join(repl.sources)} "
                                f"({byte_size(len(repl.context.encode()))} in all) — /file clear drops them"))
    if repl.attachments:
        repl.ui.notice(sanitize("attachments for the next question: "
                                + ", ".join(f"{a.name} ({byte_size(len(a.data))})" for a in repl.attachments)
                                + " — /attach clear drops them"))
    if not repl.sources and not repl.attachments:
        repl.ui.notice("nothing waits for the next question — /file SOURCE... (a file, directory, glob, URL "
                       "or !command) or /attach FILE... (images or PDFs) adds some")


def _set(repl: Repl, chosen: dict[str, str], reasoning: str | None) -> None:
    """New sampling for the next questions; the system prompt (/system) stays as it is."""
    system, now, base = repl.session.conversation.system, repl.session.overrides, repl.set_base
    base = replace(now, temperature=base.temperature, max_tokens=base.max_tokens, params=base.params,
                   reasoning=base.reasoning)  # what other commands set (/schema) stays
    repl.session.set_overrides(with_set(base, chosen, reasoning))
    repl.session.set_system(system)


def set_names(repl: Repl) -> list[tuple[str, str]]:
    """What /set takes for this model (Tab completes it): temperature, max_tokens and its provider's options."""
    from streamchat.providers.options import SAMPLING, options_for

    ptype = repl.session.target.config.type
    return [(o.name, o.expected()) for o in (*SAMPLING.values(), *options_for(ptype).values())]


def _plugin_toolbox(repl: Repl) -> Toolbox | None:
    """A toolbox made at the first /tools when only plugins offer tools (looking for them at
    start would cost every REPL an entry-point scan)."""
    from streamchat.plugins import names

    if not names("tools"):
        return None
    from streamchat.tools import build_toolbox

    toolbox = build_toolbox(repl.settings, [], list(repl.opts.approve), repl.ui, interactive=True)
    repl.session.toolbox = toolbox
    return toolbox


@command("/help", "", "list commands")
def cmd_help(repl: Repl, _arg: str) -> None:
    for name, command in COMMANDS.items():  # a longer usage pushes its text on, within 80 columns
        repl.ui.notice(f"  {f'{name} {command.args}'.rstrip():<17}  {command.text}")
    repl.ui.notice("  Alt+Enter or Esc Enter adds a line.")
    repl.ui.notice('  A line of """ alone opens a block; a line ending in """ closes it.')
    repl.ui.notice("  Pasted text is always sent as a message; // sends one that starts with /.")


@command("/model", "[NAME]", "show or switch the model")
def cmd_model(repl: Repl, arg: str) -> None:
    if arg:
        repl.session.set_model(arg)
    repl.ui.notice(f"model: {repl.model_name}")


@command("/system", "[TEXT]", "show or set the system prompt")
def cmd_system(repl: Repl, arg: str) -> None:
    if arg in ('""', "''", "-"):
        repl.session.set_system(None)
    elif arg:
        repl.session.set_system(arg)
    repl.ui.notice(f"system: {repl.session.conversation.system or '(none)'}")


@command("/new", "", "start a fresh conversation")
def cmd_new(repl: Repl, _arg: str) -> None:
    repl.session.new()
    system = repl.session.conversation.system
    repl.ui.notice("new conversation" + (f" (system prompt kept: {clip(system)}; /system \"\" clears it)"
                                         if system else ""))


@command("/retry", "", "answer again; the last answer stays as an alternative")
def cmd_retry(repl: Repl, _arg: str) -> None:
    repl.ask(None)


@command("/alt", "", "switch the last answer to its next alternative")
def cmd_alt(repl: Repl, _arg: str) -> None:
    before = repl.session.last
    _switched(repl, repl.session.alternative(), before.prompt if before is not None else None)


@command("/race", "[A B…|off]", "ask each question to several models, side by side")
def cmd_race(repl: Repl, arg: str) -> None:
    if arg == "off":
        repl.race(())
        repl.ui.notice(f"race off: {repl.model_name} answers")
        return
    if arg:
        models = tuple(dict.fromkeys(arg.split()))
        if len(models) < 2:  # the race's own refusal names the command line's form
            repl.ui.notice("a race needs at least two different models: /race MODEL_A MODEL_B…")
            return
        repl.race(models)
    if not repl.racing:
        repl.ui.notice("no race: /race MODEL_A MODEL_B… asks each question to every one of them")
        return
    toolbox = repl.session.toolbox
    tools = " (tools are not offered in a race)" if toolbox is not None and toolbox.active else ""
    repl.ui.notice(f"racing {', '.join(repl.racing)}: each question goes to every one{tools}; "
                   "/pick N continues another answer, /race off stops")


@command("/pick", "N", "continue from answer N of the last question (a race's)")
def cmd_pick(repl: Repl, arg: str) -> None:
    if not arg.isdigit():
        repl.ui.notice("/pick N: continue from answer N of the last question (history show lists them)")
        return
    before = repl.session.last
    _switched(repl, repl.session.alternative(int(arg)), before.prompt if before is not None else None)


def _switched(repl: Repl, switched: tuple[int, int] | None, before: str | None = None) -> None:
    """Say which answer the conversation continues now (and its question, when /edit last made it
    another than `before`), and draw it."""
    if switched is None:
        repl.ui.notice("no other answer to this question — /retry or /race makes one")
        return
    last = repl.session.last
    asked = f" (to: {sanitize(clip(last.prompt, 60))})" if last is not None and last.prompt != before else ""
    repl.ui.notice(f"answer {switched[0]} of {switched[1]}{asked}:")
    if last is not None:  # drawn as it was when it streamed: through the sink (which also sanitizes)
        sink = repl.sink()
        sink.feed(TextDelta(last.result.text))
        sink.end(last.result)
        repl.env.stdout.write("\n")
        repl.env.stdout.flush()


@command("/continue", "", "continue the last answer, cut off at the token limit")
def cmd_continue(repl: Repl, _arg: str) -> None:
    repl.ask(None, again=repl.session.continue_answer)


@command("/send", "", "send the question held back for overflowing the context")
def cmd_send(repl: Repl, _arg: str) -> None:
    if repl.held is None:
        repl.ui.notice("no question is held back")
        return
    (question, attachments), repl.held = repl.held, None
    repl.context, repl.sources, repl.attachments, role, repl.role = "", [], attachments, repl.role, None
    try:
        repl.ask(question, force=True)
    finally:
        repl.role = role


@command("/undo", "", "take the last exchange out of the conversation")
def cmd_undo(repl: Repl, _arg: str) -> None:
    turn = repl.session.undo()
    repl.ui.notice("nothing to undo" if turn is None else f"undone: {clip(turn.prompt)}")


@command("/fork", "", "continue in a new conversation from here (this one is kept)")
def cmd_fork(repl: Repl, _arg: str) -> None:
    if not repl.session.conversation.turn_count:  # "forked with 0 turns": the same as starting afresh
        repl.ui.notice("nothing to fork yet — ask something first")
        return
    origin = repl.session.conversation.id
    conv = repl.session.fork()
    repl.ui.notice(f"forked{f' from conversation {origin}' if origin else ''} with "
                   f"{plural(conv.turn_count, 'turn')}; the next answer starts the new conversation")


@command("/compact", "", "send the turns so far as the model's summary of them")
def cmd_compact(repl: Repl, _arg: str) -> None:
    conv = repl.session.conversation
    current = conv.current_summary
    if any(t.counts for t in conv.turns[current.turns if current is not None else 0:]):
        repl.session.compact(everything=True)
        return
    repl.session.compacting = True
    repl.ui.notice("nothing to compact yet — ask something first" if current is None
                   else "compaction on: the summary covers every turn so far")


@command("/uncompact", "", "send every turn again, not the summary")
def cmd_uncompact(repl: Repl, _arg: str) -> None:
    repl.session.compacting = False
    repl.ui.notice("compaction off: every turn is sent whole — /compact turns it on again")


@command("/copy", "[N]", "copy the last answer (or its code block N) to the clipboard")
def cmd_copy(repl: Repl, arg: str) -> None:
    last = repl.session.last
    if last is None or not last.result.text:
        repl.ui.notice("no answer to copy")
        return
    text = last.result.text
    if arg:
        block = _block(repl, arg, "/copy N", "/copy copies the whole answer")
        if block is None:
            return
        text = block.code
    how = clipboard.copy(text, repl.env.stdout)
    repl.ui.notice(f"copied {'code block ' + arg if arg else 'the answer'} {how}" if how else clipboard.MISSING)


@command("/save-code", "N FILE", "save code block N of the last answer")
def cmd_save_code(repl: Repl, arg: str) -> None:
    force = arg.startswith("!")  # /save-code! N FILE
    number, _, name = arg.lstrip("!").strip().partition(" ")
    if not name.strip():
        repl.ui.notice("usage: /save-code N FILE (/save-code! N FILE overwrites)")
        return
    block = _block(repl, number, "/save-code N FILE", "/save FILE saves the whole conversation")
    if block is None:
        return
    path = user_path(_unquoted(name.strip()))  # `'my file.sh'` as /file and Tab completion quote it
    if path.exists() and not force:
        repl.ui.notice(f"{path} exists — /save-code! {number} {name.strip()} overwrites it")
        return
    _write(repl, path, block.code, f"saved code block {number} to {path}")


@command("/save", "FILE", "save the conversation as Markdown")
def cmd_save(repl: Repl, arg: str) -> None:
    force = arg.startswith("!")
    arg = arg.lstrip("!").strip()
    if not arg:
        repl.ui.notice("usage: /save FILE (/save! FILE overwrites)")
        return
    path = user_path(_unquoted(arg))
    if path.exists() and not force:
        repl.ui.notice(f"{path} exists — /save! {arg} overwrites it")
        return
    _write(repl, path, repl.session.conversation.transcript(f"streamchat conversation ({repl.model_name})"),
           f"saved {path}")


def _write(repl: Repl, path: Path, text: str, done: str) -> None:
    """`text` into `path`, then `done` — or the one-line reason it could not be written."""
    try:
        write_named(path, text)
    except OSError as exc:
        repl.ui.error(f"cannot write {path}: {exc.strerror}")
        return
    repl.ui.notice(done)


@command("/stats", "", "timing of the last answer")
def cmd_stats(repl: Repl, _arg: str) -> None:
    conv = repl.session.conversation
    if conv.last is not None:
        repl.ui.notice(f"last answer: {conv.last.result.stats.summary()}")
    repl.ui.notice(f"conversation: {plural(conv.turn_count, 'turn')}, {conv.tokens} tokens, "
                   f"cost {money(repl.session.cost)}")


@command("/history", "", "list recent conversations")
def cmd_history(repl: Repl, _arg: str) -> None:
    log = repl.session.log
    if log is None or log.db is None:
        repl.ui.notice("the conversation log is off")
        return
    for row in log.recent(10):
        name = f"  [{row['name']}]" if row["name"] else ""
        repl.ui.notice(f"  {row['id']:>4}{name}  {row['provider']}:{row['model']}  {plural(row['turns'], 'turn')}"
                       f"  {row['title']}")


@command("/load", "ID|NAME", "resume a saved conversation")
def cmd_load(repl: Repl, arg: str) -> None:
    if not arg:
        repl.ui.notice("usage: /load ID|NAME (see /history)")
        return
    arg = _unquoted(arg)
    conv = repl.session.load(arg)
    repl.ui.notice(f"loaded conversation {sanitize(arg)} ({plural(conv.turn_count, 'turn')})")


@command("/name", "[NAME]", "show or set this conversation's name (-S NAME resumes it)")
def cmd_name(repl: Repl, arg: str) -> None:
    if arg:
        repl.session.rename(_unquoted(arg))
    name = repl.session.conversation.name
    repl.ui.notice(f"name: {name}" if name else "this conversation has no name — /name NAME gives it one")


@command("/role", "[NAME [k=v…]]", "show or switch the role; k=v fills its template")
def cmd_role(repl: Repl, arg: str) -> None:
    from streamchat.roles import get_role, parse_params, under_flags

    if arg:
        try:
            name, *items = shlex.split(arg)
        except ValueError as exc:
            raise UsageError(f"/role {arg}: {exc}", hint="/role NAME name=value …") from None
        role = get_role(repl.settings, name)
        params = {**repl.opts.params, **parse_params(items, f"/role {name} focus=security")}
        repl.role, repl.params = role, params
        repl.set_base = under_flags(role, repl.base_overrides)
        repl.session.set_overrides(with_set(repl.set_base, repl.chosen, repl.reasoning))
    name = repl.role.name if repl.role else "(none)"
    filled = " ".join(f"{k}={v}" for k, v in repl.params.items())
    repl.ui.notice(sanitize(f"role: {name}{f' ({filled})' if filled and repl.role else ''} · model: "
                            f"{repl.model_name} · system: {clip(repl.session.conversation.system or '(none)')}"))
    missing = repl.role.missing(repl.params) if repl.role else []
    if missing:
        repl.ui.notice(f"its template needs {', '.join(f'{{{{{m}}}}}' for m in missing)} — {repl.fill_hint(missing)}")


def _unquoted(arg: str) -> str:
    """`arg` without the quotes around it when it is one quoted word, as a shell passes it on (a SCHEMA
    or a FILE: /file and /attach read shell words, and Tab completion quotes names with spaces)."""
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        try:
            words = shlex.split(arg)
        except ValueError:
            return arg
        if len(words) == 1:
            return words[0]
    return arg


@command("/schema", "[SCHEMA|off]", "answer as JSON matching SCHEMA ('city, pop int')")
def cmd_schema(repl: Repl, arg: str) -> None:
    """`/schema SCHEMA` (as --schema takes it), `/schema off`, or alone: the schema in use."""
    if arg:
        from streamchat.schema import load_schema

        arg = _unquoted(arg.strip())  # `/schema 'city, pop int'`, as a shell would take it (and the hint shows)
        schema = None if arg == "off" else load_schema(arg, option="/schema").request
        repl.session.set_schema(schema)
        repl.base_overrides = replace(repl.base_overrides, schema=schema)  # it wins over a later /role's
    current = repl.session.overrides.schema
    repl.ui.notice(sanitize(f"schema: {clip(json.dumps(current.schema), 70)}") if current is not None
                   else "schema: off — answers are prose (/schema 'city, pop int' asks for JSON)")


@command("/set", "[NAME [VALUE]]", "set temperature, max_tokens or -o NAME; no VALUE unsets")
def cmd_set(repl: Repl, arg: str) -> None:
    name, _, value = arg.strip().partition(" ")
    if name:
        chosen = dict(repl.chosen)
        if value.strip():
            chosen[name] = value.strip()
        else:
            chosen.pop(name, None)
        _set(repl, chosen, repl.reasoning)
        repl.chosen = chosen
    shown = " ".join(f"{k}={v}" for k, v in repl.chosen.items()) or "(nothing set)"
    repl.ui.notice(sanitize(f"set: {shown} — /set NAME VALUE sets, /set NAME unsets"))


@command("/reasoning", "[off|low|medium|high]", "show or set the reasoning effort")
def cmd_reasoning(repl: Repl, arg: str) -> None:
    if arg:
        if arg not in REASONING:
            raise UsageError(f"/reasoning {arg}: not a level", hint="/reasoning off|low|medium|high")
        _set(repl, repl.chosen, arg)
        repl.reasoning = arg
    repl.ui.notice(f"reasoning: {repl.session.overrides.reasoning or 'the model default'}")


@command("/edit", "[last]", "compose in $EDITOR; last: edit and resend the last question")
def cmd_edit(repl: Repl, arg: str) -> None:
    from streamchat.editor import edit_text

    last = repl.session.last
    if arg == "last":
        if last is None:
            repl.ui.notice("no question to edit")
            return
        text = edit_text(last.prompt).strip()
        if not text or text == last.prompt.strip():  # quit without saving (:q!) is not a request to resend
            repl.ui.notice("unchanged — nothing sent (/retry asks it again)" if text else "empty — nothing sent")
            return
        repl.session.conversation.edit_last()  # the old exchange stays in the log, as an alternative
        try:
            repl.ask(text)
        finally:  # refused before it was logged (a role's missing value, a held overflow, a failed
            # write): the next question is no edit, and must not be stored as the old answer's alternative
            repl.session.conversation.replacing = None
        return
    if arg:  # `/edit bogus` opened an empty editor as if nothing had been typed after /edit
        repl.ui.notice("usage: /edit (a new question) or /edit last (the last one, changed and asked again)")
        return
    text = edit_text("").strip()
    if text:
        repl.ask(text)
    else:
        repl.ui.notice("empty — nothing sent")


@command("/shell", "TEXT", "turn a request into a shell command, run only if you choose")
def cmd_shell(repl: Repl, arg: str) -> None:
    from dataclasses import replace

    from streamchat.service import ChatSession
    from streamchat.shell_mode import run_shell_mode, shell_system_prompt

    if not arg:
        repl.ui.notice("usage: /shell TEXT")
        return
    overrides = replace(repl.session.overrides, model=repl.model_name, system=shell_system_prompt())
    helper = ChatSession(repl.settings, overrides, log=repl.session.log, ui=repl.ui)
    status = run_shell_mode(helper, arg, repl.env, repl.ui, hold_keys=True)  # typed keys: unechoed, as in a turn
    if status:
        repl.ui.notice(f"exit status {status}")


@command("/tools", "[on|off NAME[:TOOL]]", "list MCP servers and tools, or turn them on/off")
def cmd_tools(repl: Repl, arg: str) -> None:
    toolbox = repl.toolbox or _plugin_toolbox(repl)
    if toolbox is None:
        repl.ui.notice("no tools: add [mcp.NAME] with command = … or url = … to the config, pass --functions FILE.py, "
                       "or install a plugin that offers tools")
        return
    action, _, item = arg.partition(" ")
    item = item.strip()
    if action == "on" and item:
        toolbox.enable(item)
        repl.ui.notice(f"tools on: {toolbox.label()}")
    elif action == "off" and item:
        repl.ui.notice(f"{item} off" if toolbox.disable(item) else f"{item} was not on")
    elif action:
        repl.ui.notice("usage: /tools, /tools on NAME[:TOOL], /tools off NAME[:TOOL]")
        return
    for line in toolbox.describe():
        repl.ui.notice(line)


@command("/file", "[SOURCE...|clear]", "context: files, folders, URLs, !commands; alone: list")
def cmd_file(repl: Repl, arg: str) -> None:
    if not arg:
        _pending(repl)
    elif arg == "clear":  # a file named clear: /file ./clear
        repl.context, repl.sources = "", []
        repl.ui.notice("sources cleared")
    else:
        sources = [arg] if arg.startswith("!") else _words(arg, "/file")
        context, _ = gather_inputs(sources, [], stdin_text=None, timeout=repl.session.options.timeout,
                                   ui=repl.ui)
        repl.context = f"{repl.context}\n\n{context}" if repl.context else context
        repl.sources += sources


def _words(arg: str, name: str) -> list[str]:
    """The paths typed after `name`, split as a shell would (quotes for spaces)."""
    try:
        return shlex.split(arg)
    except ValueError as exc:
        raise UsageError(f"{name} {arg}: {exc}", hint=f"quote a name with spaces: {name} 'my file.txt'") from None


@command("/attach", "[FILE...|clear]", "attach images or PDFs to the next question")
def cmd_attach(repl: Repl, arg: str) -> None:
    if not arg:
        _pending(repl)
    elif arg == "clear":
        repl.attachments = ()
        repl.ui.notice("attachments cleared")
    else:
        _, attachments = gather_inputs([], _words(arg, "/attach"), stdin_text=None,
                                       timeout=repl.session.options.timeout, ui=repl.ui)
        repl.attachments += attachments


@command("/exit", "", "quit (or Ctrl-D)")
def cmd_exit(repl: Repl, _arg: str) -> None:
    repl.running = False
