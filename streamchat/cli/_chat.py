"""The chat command (the default) and `models`."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from streamchat.cli._app import (
    CHAT,
    ChatCommand,
    ConfigOpt,
    DebugOpt,
    ModelsOpt,
    NoLogOpt,
    TimeoutOpt,
    _command,
    _complete_ids,
    _complete_mcp,
    _complete_names,
    _complete_roles,
    _globals,
    _number_in,
    app,
)
from streamchat.config import MAX_TOKENS
from streamchat.errors import UsageError
from streamchat.exit_status import ExitStatus

if TYPE_CHECKING:
    from streamchat.roles import Role
    from streamchat.schema_request import ResponseSchema


class Reasoning(str, Enum):
    off = "off"
    low = "low"
    medium = "medium"
    high = "high"


def _params(given: list[str]) -> dict[str, str]:
    from streamchat.roles import parse_params

    return parse_params(given, "-p focus=security")


def _schema(spec: str | None, multi: bool, role: Role | None) -> ResponseSchema | None:
    """--schema's (else the -r role's) schema, --schema-multi wrapping either; a bad one is exit 2, nothing sent."""
    if spec is not None:
        from streamchat.prompt_input import argv_text
        from streamchat.schema import load_schema

        return load_schema(argv_text(spec, "--schema"), multi=multi).request
    if multi and (role is None or role.schema is None):
        raise UsageError("--schema-multi goes with --schema", hint="streamchat --schema 'city, pop int' --schema-multi …")
    return role.response_schema(multi=multi) if role is not None else None


def _check_race(*, tools: bool, extract: bool, shell: bool, continue_answer: bool, save_role: bool) -> None:
    """What several -m cannot go with: one line, exit 2, nothing sent."""
    given = [name for name, on in (("--tools/--functions", tools), ("-x/--extract-all", extract), ("--shell", shell),
                                   ("--continue-answer", continue_answer), ("--save-role", save_role)) if on]
    if given:
        raise UsageError(f"several -m race the models on one question; {given[0]} works with one model",
                         hint=f"pass one -m with {given[0]}")


@app.command(CHAT, cls=ChatCommand, help="Answer a prompt (the default command).")
def chat(
    ctx: typer.Context,
    prompt: Annotated[Optional[list[str]], typer.Argument(metavar="PROMPT", show_default=False,
                                                          help="The prompt; stdin is appended as context.")] = None,
    model: ModelsOpt = None,
    system: Annotated[Optional[str], typer.Option("-s", "--system", metavar="TEXT", help="System prompt.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", metavar="FLOAT", callback=_number_in(0, 2),
                                                         help="Sampling temperature (0-2).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", metavar="N", callback=_number_in(1, MAX_TOKENS),
                                                           help="Longest answer in tokens (at least 1).")] = None,
    option: Annotated[Optional[list[str]], typer.Option(
        "-o", "--option", metavar="NAME=VALUE",
        help="A provider option, e.g. -o top_p=0.5 -o seed=7 (repeatable; streamchat models --options PROVIDER).")] = None,
    reasoning: Annotated[Optional[Reasoning], typer.Option(
        "--reasoning", help="Reasoning effort (OpenAI) or extended thinking (Anthropic).")] = None,
    hide_reasoning: Annotated[bool, typer.Option("--hide-reasoning", help="Do not show the model's reasoning on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="NDJSON events on stdout.")] = False,
    no_markdown: Annotated[bool, typer.Option("--no-markdown", help="Plain text even on a terminal.")] = False,
    stats: Annotated[bool, typer.Option("--stats", help="TTFT, tokens, tok/s and time on stderr.")] = False,
    timeout: TimeoutOpt = None,
    sanitize: Annotated[bool, typer.Option("--sanitize", help="Strip terminal control sequences in piped output too.")] = False,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Piped output: the answer's bytes exactly (no newline added at the end).")] = False,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed requests.")] = False,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Send no prompt-cache breakpoints (Anthropic; config: cache = false).")] = False,
    cont: Annotated[bool, typer.Option("-c", "--continue", help="Continue the most recent conversation.")] = False,
    cid: Annotated[Optional[str], typer.Option("--cid", metavar="ID", autocompletion=_complete_ids,
                                               help="Continue the conversation with this id.")] = None,
    session: Annotated[Optional[str], typer.Option("-S", "--session", metavar="NAME", autocompletion=_complete_names,
                                                   help="Continue the conversation named NAME, or start it.")] = None,
    continue_answer: Annotated[bool, typer.Option(
        "--continue-answer",
        help="Continue the last answer, cut off at the token limit (of -c's, --cid's or -S's conversation; "
             "default: the latest).")] = False,
    no_log: NoLogOpt = False,
    no_compact: Annotated[bool, typer.Option(
        "--no-compact", help="Send every earlier turn, never a summary of the older ones (compaction).")] = False,
    files: Annotated[Optional[list[str]], typer.Option(
        "-f", "--file", metavar="SOURCE",
        help="Add text context: a file, directory, glob, URL, '-' (stdin) or '!command' (repeatable).")] = None,
    attach: Annotated[Optional[list[str]], typer.Option(
        "-a", "--attach", metavar="FILE", help="Attach an image (PNG, JPEG, GIF, WebP) or a PDF (repeatable).")] = None,
    role: Annotated[Optional[str], typer.Option("-r", "--role", metavar="NAME", autocompletion=_complete_roles,
                                                help="Use a role: system prompt, model, sampling, template.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "-p", "--param", metavar="NAME=VALUE", help="Fill {{NAME}} in the role's template (repeatable).")] = None,
    save_role: Annotated[Optional[str], typer.Option(
        "--save-role", metavar="NAME",
        help="Save -s, -m, --temperature, --max-tokens, --schema, -o, --reasoning and -r's role "
             "(its template with -p filled in) as a role.")] = None,
    force: Annotated[bool, typer.Option("--force", help="With --save-role: replace a role of that name.")] = False,
    editor: Annotated[bool, typer.Option("--editor", help="Write the prompt in $VISUAL/$EDITOR first.")] = False,
    shell: Annotated[bool, typer.Option(
        "--shell", help="Turn the prompt into one shell command; run it only if you choose to.")] = False,
    tools: Annotated[Optional[list[str]], typer.Option(
        "--tools", metavar="NAME[:TOOL]", autocompletion=_complete_mcp,
        help="Let the model call the tools of MCP server NAME ([mcp.NAME] in the config), or one TOOL (repeatable).")] = None,
    functions: Annotated[Optional[list[str]], typer.Option(
        "--functions", metavar="FILE.py",
        help="Let the model call this file's type-hinted functions, each call approved as MCP tools are (repeatable).")] = None,
    function_timeout: Annotated[Optional[float], typer.Option(
        "--function-timeout", metavar="SECONDS", callback=_number_in(0.1, 86400),
        help="Abandon a Python function's call after this long, told to the model as a tool error "
             "(default 60; config function_timeout).")] = None,
    approve: Annotated[Optional[list[str]], typer.Option(
        "--approve", metavar="NAME[:TOOL]|all",
        help="Run this tool without asking (NAME:TOOL, NAME, or all); without a terminal nothing else runs.")] = None,
    extract: Annotated[bool, typer.Option("-x", "--extract", help="Write only the answer's first code block to stdout.")] = False,
    extract_all: Annotated[bool, typer.Option("--extract-all", help="Write all the answer's code blocks to stdout.")] = False,
    schema: Annotated[Optional[str], typer.Option(
        "--schema", metavar="SCHEMA",
        help="Answer as JSON matching SCHEMA (a JSON Schema, a file, or fields: 'name, age int, bio: a one-line bio'), "
             "checked and repaired once; stdout is the document.")] = None,
    schema_multi: Annotated[bool, typer.Option(
        "--schema-multi", help='With --schema: a list of such objects, as {"items": [...]}.')] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import ChatOptions, gather_inputs, run_chat
    from streamchat.prompt_input import argv_text, compose_prompt, read_stdin
    from streamchat.service import Overrides, preimport

    models = list(dict.fromkeys(model or []))  # -m A -m B: a race (the same model twice is one)
    g = _globals(ctx).merge(config=config, debug=debug, no_log=no_log, model=models[0] if models else None,
                            timeout=timeout)
    with _command(g) as (settings, env, ui):
        from streamchat import roles

        if function_timeout is not None:
            from dataclasses import replace as _with

            settings = _with(settings, function_timeout=function_timeout)
        racing = len(models) > 1
        if racing:
            _check_race(tools=bool(tools or functions), extract=extract or extract_all, shell=shell,
                        continue_answer=continue_answer, save_role=save_role is not None)

        if session is not None and (cont or cid is not None):
            raise UsageError(f"--session picks the conversation, and so do {'-c' if cont else '--cid'}",
                             hint="use one of them")
        modes = [name for name, on in (("--json", json_out), ("-x/--extract-all", extract or extract_all),
                                       ("--shell", shell), ("--schema", schema is not None)) if on]
        if json_out and schema is not None:
            modes.remove("--json")  # --json with --schema: the events, and the data as one more
        if len(modes) > 1:  # each decides what stdout holds; the others were silently dropped
            raise UsageError(f"{' and '.join(modes)} each decide what stdout holds", hint="pick one")
        prompt = [argv_text(word, "the prompt") for word in prompt or []]
        system = argv_text(system, "--system") if system is not None else None
        param = [argv_text(value, "-p") for value in param or []]
        chosen = roles.get_role(settings, role) if role else None
        from streamchat.providers.options import split_assignment

        overrides = Overrides(model=g.model, system=system, temperature=temperature, max_tokens=max_tokens,
                              timeout=g.timeout, retry=not no_retry, schema=_schema(schema, schema_multi, chosen),
                              params=tuple(split_assignment(argv_text(item, "-o")) for item in option or []),
                              reasoning=reasoning.value if reasoning is not None else None,
                              cache=False if no_cache else None)
        if chosen is not None:
            overrides = roles.under_flags(chosen, overrides)
        if overrides.schema is not None and (extract or extract_all or shell):
            from dataclasses import replace

            overrides = replace(overrides, schema=None)  # they decide stdout: a role's schema gives way
        if prompt or editor or not env.stdin_isatty:  # not for the REPL: its warm-up starts once the prompt shows
            for name in models if racing else [overrides.model]:
                preimport(settings, name)  # the SDK import overlaps reading stdin and opening the log
        params = _params(param or [])
        if force and not save_role:
            raise UsageError("--force only goes with --save-role", hint="streamchat --save-role NAME --force -s …")
        if save_role:
            from streamchat.providers.options import typed_for

            options = typed_for(settings, overrides.model, overrides.params)  # as the model's provider takes them
            path = roles.save_role(settings, roles.given_role(save_role, overrides, chosen, params, options), force=force)
            ui.notice(f"saved role '{save_role}' to {path}")
        stdin_text = read_stdin(env, settings.max_input_bytes)
        context, attachments = gather_inputs(files or [], attach or [], stdin_text=stdin_text,
                                             timeout=g.timeout or settings.timeout, ui=ui)
        opts = ChatOptions(
            overrides=overrides, json=json_out, markdown=not no_markdown and settings.markdown,
            code_theme=settings.code_theme, stats=stats,
            sanitize=sanitize, raw=raw, continue_last=cont or continue_answer and cid is None and session is None,
            cid=cid, session=session, log=settings.log and not g.no_log, debug=g.debug,
            context=context, attachments=attachments, extract="all" if extract_all else "first" if extract else None,
            role=chosen, params=params, tools=tuple(tools or ()), approve=tuple(approve or ()),
            functions=tuple(functions or ()),
            hide_reasoning=hide_reasoning, compact=not no_compact, race=tuple(models) if racing else (),
        )
        text = compose_prompt(prompt, None if "-" in (files or []) else stdin_text)
        if save_role and text is None and not editor:
            raise typer.Exit(ExitStatus.OK)  # saving was the whole job
        if continue_answer:
            if text is not None or context or attachments or shell or editor:
                raise UsageError("--continue-answer continues the last answer as it was asked; it takes no prompt,"
                                 " input or --shell/--editor", hint="ask a follow-up in a run of its own")
            raise typer.Exit(run_chat(settings, opts, env, ui, None))
        if editor:
            from streamchat.editor import edit_text

            text = edit_text(text or "").strip() or None
            if text is None:
                raise UsageError("the editor left the prompt empty; nothing was sent")
        if text is not None and chosen is not None:
            text = chosen.apply(text, params)
        if shell:
            if text is None:
                raise UsageError("--shell needs a request", hint='streamchat --shell "find files over 100 MB"')
            from dataclasses import replace as with_

            from streamchat.chat import open_session
            from streamchat.shell_mode import run_shell_mode, shell_system_prompt

            opts = with_(opts, overrides=with_(overrides, system=system or shell_system_prompt()))
            raise typer.Exit(run_shell_mode(open_session(settings, opts, ui), text, env, ui, stats=stats))
        if text is None:
            if not env.stdin_isatty:
                raise UsageError("no prompt given", hint='pass a prompt: streamchat "question", or pipe text in')
            if not env.stdout_isatty:
                raise UsageError("the chat REPL needs a terminal on stdout",
                                 hint='to save answers, pass a prompt: streamchat "question" | tee answer.txt')
            from streamchat.repl import run_repl

            code = run_repl(settings, opts, env, ui)
        else:
            code = run_chat(settings, opts, env, ui, text)
    raise typer.Exit(code)


@app.command("models", help="List the models each configured provider offers.", short_help="List each configured provider's models.")
def models(
    ctx: typer.Context,
    provider: Annotated[Optional[str], typer.Argument(metavar="PROVIDER", show_default=False,
                                                      help="Only this provider.")] = None,
    options: Annotated[bool, typer.Option("--options", help="List the -o options PROVIDER takes, not its models.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import list_models, list_options

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, ui):
        if options:
            if provider is None:
                raise UsageError("--options lists one provider's options", hint="streamchat models --options openai")
            raise typer.Exit(list_options(settings, env, provider))
        raise typer.Exit(list_models(settings, env, ui, provider))
