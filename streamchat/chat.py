"""One-shot chat: settings + options → request → run_turn → sink, store, exit code."""

from __future__ import annotations

from dataclasses import dataclass

from streamchat.config import Settings
from streamchat.environment import Environment
from streamchat.errors import EXIT_OK
from streamchat.events import Message, TurnResult
from streamchat.providers.base import ChatRequest, Provider, get_provider
from streamchat.session import NO_RETRY, RetryPolicy, run_turn
from streamchat.sinks import choose_sink
from streamchat.ui import UI


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    json: bool = False
    markdown: bool = True
    stats: bool = False
    timeout: float = 60.0
    sanitize: bool = False
    retry: bool = True
    continue_last: bool = False
    cid: str | None = None
    log: bool = True
    debug: bool = False


def retry_policy(settings: Settings, opts: ChatOptions) -> RetryPolicy:
    return RetryPolicy(retries=settings.retries, max_wait=settings.retry_max_wait) if opts.retry else NO_RETRY


@dataclass
class Target:
    """A resolved model: the adapter to call and the names to show and store."""

    provider: Provider
    provider_name: str
    model: str
    base_url: str | None


def resolve_target(settings: Settings, spec: str | None, timeout: float, ui: UI | None = None) -> Target:
    cfg, model = settings.resolve(spec)
    if cfg.type == "local" and ui is not None:
        from streamchat.render.spinner import Spinner

        with Spinner(ui.env, "loading model"):
            provider = get_provider(cfg, timeout=timeout)
            provider.preload(model)  # type: ignore[attr-defined]
    else:
        provider = get_provider(cfg, timeout=timeout)
    return Target(provider, cfg.name, model, cfg.base_url)


def build_request(target: Target, settings: Settings, opts: ChatOptions, history: list[Message],
                  prompt: str | None, system: str | None = None) -> ChatRequest:
    """Messages for the provider: system prompt (flag > conversation > config), history, prompt."""
    if opts.system is not None:
        system = opts.system
    elif system is None:
        system = settings.system
    messages: list[Message] = []
    if system and not any(m.role == "system" for m in history):
        messages.append(Message("system", system))
    messages.extend(history)
    if prompt is not None:
        messages.append(Message("user", prompt))
    return ChatRequest(
        model=target.model,
        messages=tuple(messages),
        temperature=opts.temperature if opts.temperature is not None else settings.temperature,
        max_tokens=opts.max_tokens if opts.max_tokens is not None else settings.max_tokens,
        timeout=opts.timeout,
    )


def stream_answer(target: Target, request: ChatRequest, settings: Settings, opts: ChatOptions,
                  env: Environment, ui: UI) -> TurnResult:
    sink = choose_sink(env, json=opts.json, markdown=opts.markdown, sanitize=opts.sanitize, stats=opts.stats)
    return run_turn(target.provider, request, sink, retry=retry_policy(settings, opts), notice=ui.notice,
                    base_url=target.base_url)


def run_chat(settings: Settings, opts: ChatOptions, env: Environment, prompt: str) -> int:
    ui = UI(env)
    from streamchat.store import open_log

    log = open_log(settings, enabled=opts.log, warn=ui.warn)
    conversation = log.pick(continue_last=opts.continue_last, cid=opts.cid)
    target = resolve_target(settings, opts.model if opts.model or not conversation.model else conversation.model,
                            opts.timeout, ui)
    request = build_request(target, settings, opts, conversation.messages, prompt, conversation.system)
    result = stream_answer(target, request, settings, opts, env, ui)
    system = next((m.content for m in request.messages if m.role == "system"), None)
    log.record(conversation, target.provider_name, target.model, system, prompt, result)
    report_failure(result, ui, opts.debug)
    return result.exit_code


def report_failure(result: TurnResult, ui: UI, debug: bool) -> None:
    """One line on stderr for a failed turn; with --debug the underlying traceback first."""
    if result.state != "error":
        return
    if debug and result.exception is not None:
        ui.traceback(result.exception.__cause__ or result.exception)
    ui.error(result.error or "failed")


def list_models(settings: Settings, env: Environment, only: str | None) -> int:
    """`streamchat models`: every provider's models, one `provider:model` per line.

    A provider that cannot answer (no key, no server) is skipped with a note, unless it
    was asked for by name, in which case its error is the command's error.
    """
    from streamchat.errors import UsageError, map_exception

    if only and only not in settings.providers:
        raise UsageError(f"unknown provider '{only}'", hint=f"one of: {', '.join(settings.providers)}")
    ui = UI(env)
    for name in [only] if only else list(settings.providers):
        cfg = settings.providers[name]
        try:
            found = list(cfg.models) or get_provider(cfg).list_models()
        except Exception as exc:
            err = map_exception(exc, provider=name, model="", base_url=cfg.base_url)
            if only:
                raise err from exc
            ui.notice(f"{name}: skipped ({err.message})")
            continue
        for model in found:
            env.stdout.write(f"{name}:{model}\n")
    env.stdout.flush()
    return EXIT_OK
