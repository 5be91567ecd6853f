"""The chat service: one `ChatSession` that the one-shot command, the REPL and serve all drive.

It owns the resolved model, the one merge of options (flag > environment > config >
built-in default), the conversation, and the log. A front end builds a sink and calls
`ask()`; what the turn produced comes back as one frozen `TurnResult`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from streamchat import background, signals
from streamchat.cancel import CancelToken
from streamchat.config import ProviderConfig, Settings
from streamchat.conversation import Conversation, Summary, Turn
from streamchat.errors import BadRequestError, ConfigError, StreamchatError, UsageError
from streamchat.events import Attachment, Event, FrontEnd, Message, Outcome, Sink, Stats, ToolChoice, ToolSpec, TurnResult
from streamchat.providers.base import AsyncProvider, ChatRequest, Provider, get_provider
from streamchat.schema_request import ResponseSchema
from streamchat.session import NO_RETRY, RetryPolicy, ToolRunner, Toolset, run_turn, run_turn_async
from streamchat.store import ConversationLog

T = TypeVar("T")


@dataclass(frozen=True)
class Overrides:
    """What a front end asks for on top of the settings (flags, a REPL command, a serve request).

    None means "not given": the environment, the config file or the built-in default decides.
    """

    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    retry: bool = True
    params: tuple[tuple[str, Any], ...] = ()  # provider options (-o, /set, a role, serve): text or typed, checked per turn
    reasoning: str | None = None  # --reasoning: off | low | medium | high
    tools: tuple[ToolSpec, ...] = ()  # a client's own tools (serve): passed through, never run here
    tool_choice: ToolChoice | None = None
    schema: ResponseSchema | None = None  # the answer is JSON matching it (--schema, a role, response_format)
    cache: bool | None = None  # mark prompt-cache breakpoints (--no-cache: False)


@dataclass(frozen=True)
class TurnOptions:
    """The effective options of a turn, after the merge."""

    system: str | None
    temperature: float | None
    max_tokens: int | None
    timeout: float
    retry: RetryPolicy
    cache: bool = True


def pick(given: T | None, configured: T) -> T:
    """The given value unless it is None (not given)."""
    return given if given is not None else configured


def merge(settings: Settings, overrides: Overrides) -> TurnOptions:
    """The one place where overrides meet the settings (which already merged config and defaults)."""
    return TurnOptions(
        system=pick(overrides.system, settings.system),
        temperature=pick(overrides.temperature, settings.temperature),
        max_tokens=pick(overrides.max_tokens, settings.max_tokens),
        timeout=pick(overrides.timeout, settings.timeout),
        retry=RetryPolicy(retries=settings.retries, max_wait=settings.retry_max_wait) if overrides.retry else NO_RETRY,
        cache=pick(overrides.cache, settings.cache),
    )


CONTINUE = ("Your answer above was cut off at the token limit. Continue it exactly where it stops, mid-sentence or "
            "mid-word if need be, without repeating anything and without a preamble.")


def joined(first: TurnResult, prefix: str, more: TurnResult) -> TurnResult:
    """One answer from a cut-off one (its text `prefix`) and its continuation: the text joined, the
    figures summed (an unknown price stays unknown), how it ended the continuation's."""
    a, b = first.stats, more.stats
    stats = Stats(ttft_ms=a.ttft_ms, total_ms=a.total_ms + b.total_ms, tokens=a.tokens + b.tokens,
                  input_tokens=_total(a.input_tokens, b.input_tokens),
                  cost_usd=None if a.cost_usd is None or b.cost_usd is None else a.cost_usd + b.cost_usd,
                  cached_tokens=_total(a.cached_tokens, b.cached_tokens))
    return replace(more, text=prefix + more.text, reasoning=first.reasoning + more.reasoning, stats=stats,
                   steps=first.steps + more.steps)


def _total(x: int | None, y: int | None) -> int | None:
    return None if x is None and y is None else (x or 0) + (y or 0)


class Target:
    """A resolved model: its provider's config, the names to show and store, and the adapter — built
    now, or later in the background (`warm`: `start()`), so the REPL's prompt appears before the SDK
    is imported."""

    def __init__(self, config: ProviderConfig, model: str, build: Callable[[], Provider], *, warm: bool = False,
                 route: str | None = None) -> None:
        self.config, self.provider_name, self.model = config, config.name, model
        self.route = route  # a [routes.NAME]: config and model are its first deployment's
        self._build_fn = build
        # Built now (serve, one-shot): the provider alone. Only a warm target, built in the
        # background, needs the lock and the future — per serve request they were ~1/5 of its target.
        self._provider: Provider | None = None
        self._future: Future[Provider] | None = None
        if warm:
            self._future = Future()
            self._started = False
            self._lock = threading.Lock()
        else:
            self._provider = build()  # a failure to build is raised at once

    def _claim(self) -> bool:
        with self._lock:
            started, self._started = self._started, True
        return not started

    def _build(self) -> None:
        assert self._future is not None
        try:
            self._future.set_result(self._build_fn())
        except BaseException as exc:  # handed to whoever asks for the provider
            self._future.set_exception(exc)

    def start(self) -> None:
        """Build in a background thread (once)."""
        if self._future is not None and self._claim():
            background.start(self._build, name="warm-up")

    @property
    def ready(self) -> bool:
        return self._future is None or self._future.done()

    @property
    def provider(self) -> Provider:
        if self._future is None:
            assert self._provider is not None
            return self._provider
        if self._claim():  # nobody started it: build here
            self._build()
        return self._future.result()

    @property
    def name(self) -> str:
        return self.route or f"{self.provider_name}:{self.model}"

    def answered(self) -> tuple[str, str]:
        """(provider, model) that answered the last request: a route's deployment, else this one."""
        built = self._future is None or (self._future.done() and self._future.exception() is None)
        deployment = getattr(self.provider, "answered", None) if built else None
        return (deployment.provider.name, deployment.model) if deployment is not None else (self.provider_name, self.model)


def resolve_target(settings: Settings, spec: str | None, timeout: float, ui: FrontEnd | None = None, *,
                   warm: bool = False, notice: Callable[[str], None] | None = None) -> Target:
    """`spec` (or the environment's / config's default) → an adapter, prepared for its first turn.

    The model name is checked at once (a typo fails before anything loads); with `warm` the
    SDK import, client and local weights load in a background thread. A route's notices go to
    `notice` (default: `ui`'s), which a session binds late so a race lane's reach its own pane.
    """
    cfg, model = settings.resolve(spec)
    route = settings.route(spec)

    def build() -> Provider:
        if route is not None:
            from streamchat.routing import RoutedProvider

            provider: Provider = RoutedProvider(route, timeout=timeout, notice=notice or (ui.notice if ui is not None else None))
        else:
            provider = get_provider(cfg, timeout=timeout)
        provider.prepare(model)
        if warm:
            if ui is not None:
                ui.warm_up()
            from streamchat.cost import context_window

            context_window(settings, cfg, model)  # loads the price database (~45 ms) for the toolbar
        return provider

    if ui is not None and not cfg.spec.remote and not warm:  # the model loads here
        with ui.spinner("loading model"):
            return Target(cfg, model, build)
    return Target(cfg, model, build, warm=warm, route=route.name if route is not None else None)


def preimport(settings: Settings, spec: str | None) -> None:
    """Start importing the SDK `spec` needs in the background (one-shot: while stdin is read and
    the log opened). A bad name is left for the real resolution to report."""
    try:
        cfg, _model = settings.resolve(spec)
    except StreamchatError:
        return
    from streamchat.providers._http import path_for

    module = cfg.spec.sdk_module
    if module is not None and path_for(cfg) == "sdk":  # the lean path imports no SDK
        background.start(_preimport, module, name="preimport")


def _preimport(module: str) -> None:
    from streamchat.providers._sdk import import_sdk

    import_sdk(module)
    # Then the price database, which prices the turn as it ends: imported there, its ~0.2 s came
    # between the answer's last token and the last paint.
    with contextlib.suppress(ImportError):
        import genai_prices  # noqa: F401


class ChatSession:
    """A conversation with one model, turn by turn, recorded in the log when there is one."""

    def __init__(self, settings: Settings, overrides: Overrides = Overrides(), *,
                 conversation: Conversation | None = None, log: ConversationLog | None = None,
                 ui: FrontEnd | None = None, warm: bool = False, toolbox: Toolset | None = None,
                 compact: bool = True) -> None:
        self.settings = settings
        self.compacting = compact  # older turns go as a summary when the window is full (compaction.py)
        self.toolbox = toolbox  # tools this process runs (MCP), after the user approves each call
        self.log = log
        self.ui = ui
        self.conversation = conversation or Conversation()
        # A -s flag replaces the conversation's system prompt; a resumed one keeps its own.
        if overrides.system is not None or self.conversation.id is None:
            self.conversation.system = merge(settings, overrides).system
        self.overrides = overrides
        self.options = merge(settings, overrides)
        self.warm = warm
        self._windows: dict[str, int | None] = {}
        self.target = resolve_target(settings, overrides.model or self.conversation.model, self.options.timeout, ui,
                                     warm=warm, notice=self._notice if ui is not None else None)

    # -- state the front ends show -----------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.target.name

    @property
    def last(self) -> Turn | None:
        return self.conversation.last

    # -- turns -------------------------------------------------------------------------------
    def request(self, prompt: str | None, attachments: tuple[Attachment, ...] = ()) -> ChatRequest:
        """The provider request for `prompt` after the conversation so far (None: no new question,
        the conversation ends with tool results the model answers from)."""
        summary = self.conversation.current_summary if self.compacting else None
        if prompt is None and summary is not None and summary.turns >= len(self.conversation.turns):
            summary = None  # the request ends with the last turn (continued, or answered from tool results)
        history = self._sendable(self.conversation.history(summary))
        messages: list[Message] = []
        system = self.system_prompt(summary)
        if system and not any(m.role == "system" for m in history):
            messages.append(Message("system", system))
        messages += history
        if prompt is not None:
            messages.append(Message("user", prompt, attachments))
        tools = self.overrides.tools or (self.toolbox.specs() if self.toolbox is not None and self._own_tools() else ())
        return ChatRequest(model=self.target.model, messages=tuple(messages), temperature=self.options.temperature,
                           max_tokens=self.options.max_tokens, timeout=self.options.timeout,
                           params=self.params(), tools=tools,
                           tool_choice=self.overrides.tool_choice if tools else None, schema=self.overrides.schema,
                           reasoning=self.overrides.reasoning, cache=self.options.cache)

    def params(self) -> tuple[tuple[str, Any], ...]:
        """The provider options of the next request, typed and checked against the provider's table:
        the config's (`options` of the provider, then `model_options."MODEL"`) under the role's and the
        flags' (-o, /set). --reasoning is refused here for the embedded model."""
        cfg = self.target.config
        if self.overrides.reasoning not in (None, "off") and not cfg.spec.reasoning:
            raise UsageError(f"{self.model_name} cannot reason (--reasoning {self.overrides.reasoning})",
                             hint="use a model that can (e.g. -m anthropic or -m openai:o4-mini), or leave --reasoning off")
        configured = [(where, table) for where, table in (
            (f"[providers.{cfg.name}] options", cfg.options.get("options")),
            (f'[providers.{cfg.name}.model_options."{self.target.model}"]',
             (cfg.options.get("model_options") or {}).get(self.target.model)))
            if table is not None]
        if not configured and not self.overrides.params:
            return ()
        from streamchat.providers.options import check, options_for

        table = options_for(cfg.type)
        out: dict[str, Any] = {}
        for where, given in configured:
            if not isinstance(given, dict):
                raise ConfigError(f"{where} must be a table of option = value",
                                  hint=f"e.g. options = {{ top_p = 0.9 }} (streamchat models --options {cfg.name})")
            out.update(check(table, given.items(), provider=cfg.name, where=where, error=ConfigError))
        out.update(check(table, self.overrides.params, provider=cfg.name))
        return tuple(out.items())

    def _runner(self) -> ToolRunner | None:
        """The toolbox when tools are on. The embedded model has no tool-call format: asked with tools
        (ours or a serve client's) it is refused before anything loads."""
        ours = self._own_tools()
        if (ours or self.overrides.tools) and not self.target.config.spec.tools:
            raise BadRequestError(f"{self.model_name} cannot call tools",
                                  hint="use a model that can (e.g. -m openai:gpt-4o-mini or -m anthropic), "
                                       "or leave the tools off (drop --tools; in the REPL: /tools off NAME)")
        return self.toolbox if ours else None

    def _own_tools(self) -> bool:
        """Whether the toolbox offers its tools this turn: asked for (--tools, --functions, /tools on),
        or only the config's `functions` and the model can call tools (they are not refused for one
        that cannot, which would stop every chat with it)."""
        box = self.toolbox
        return box is not None and box.active and (
            box.asked or self.target.config.spec.tools)

    def ask(self, prompt: str | None, sink: Sink, *, attachments: tuple[Attachment, ...] = (),
            cancel: CancelToken | None = None, then: Callable[[TurnResult], TurnResult] | None = None) -> TurnResult:
        """Run one turn into `sink`, add it to the conversation and the log; never raises for faults.

        An attachment the provider cannot take is a BadRequestError before anything is sent
        (a PDF becomes its text instead, and the user is told). `then` sees the result once it is
        recorded, before the sink's end (a race's lane: the race saves it).
        """
        prompt, attachments, request, runner = self._begin(prompt, attachments)

        def keep(result: TurnResult) -> TurnResult:
            signals.ending()
            result = self._record(prompt, attachments, result)
            return then(result) if then is not None else result

        with signals.turn():  # once the turn is ending, a second signal waits until it is saved
            return run_turn(self.target.provider, request, sink, retry=self.options.retry, notice=self._notice,
                            cancel=cancel, price=self._price, tools=runner, keep=keep,
                            overflow=self._on_overflow(prompt, attachments, request))

    def continue_answer(self, sink: Sink, *, cancel: CancelToken | None = None) -> TurnResult:
        """Continue the last answer, which stopped at the token limit, into `sink`. The conversation
        and the log keep one answer, its text the two parts joined; the result returned is the
        continuation's own (what was shown). An answer that did not stop there is a UsageError."""
        last = self.conversation.last
        if last is None:
            raise UsageError("there is no answer to continue: this conversation has none yet",
                             hint="ask a question first; continuing is for an answer cut off at --max-tokens",
                             repl_hint="ask a question first; /continue is for an answer cut off at the token limit")
        if not last.result.cut_off or not last.result.text:
            raise UsageError("the last answer did not stop at the token limit; there is nothing to continue",
                             hint="continuing is for an answer cut off at --max-tokens; ask a follow-up instead",
                             repl_hint="/continue is for an answer cut off at the token limit; ask a follow-up instead")
        _prompt, _attachments, request, runner = self._begin(None, ())
        prefix, request = self._continuation(last.result.text, request)

        def keep(result: TurnResult) -> TurnResult:
            signals.ending()
            if not result.text and not result.ok:  # failed before any text: the answer stays as it was
                return result
            if last.id is not None:  # the log's answer is the one continued
                result = replace(result, conversation_id=self.conversation.id, turn_id=last.id)
            whole = joined(last.result, prefix, result)
            self.conversation.turns[-1] = replace(last, result=whole)
            if self.log is not None and last.id is not None:
                self.log.replace_answer(self.conversation, last.id, whole)
            return result

        with signals.turn():
            return run_turn(self.target.provider, request, sink, retry=self.options.retry, notice=self._notice,
                            cancel=cancel, price=self._price, tools=runner, keep=keep)

    def _continuation(self, partial: str, request: ChatRequest) -> tuple[str, ChatRequest]:
        """(the text the continuation follows, the request): the context ends with the partial answer.
        Anthropic continues an assistant message that ends the request (a prefill, which its API
        refuses with extended thinking on); the others are asked to continue it."""
        messages = list(request.messages)
        prefill = self.target.config.spec.prefill
        if prefill and request.reasoning in (None, "off"):
            partial = partial.rstrip()  # the API refuses a final assistant message ending in whitespace
            messages[-1] = replace(messages[-1], content=partial)
        else:
            messages.append(Message("user", CONTINUE))
        return partial, replace(request, messages=tuple(messages))

    @property
    def streams_async(self) -> bool:
        """Whether the adapter can stream on asyncio (the SDK adapters; not the local model)."""
        return hasattr(self.target.provider, "astream")

    def ask_async(self, prompt: str | None, *, attachments: tuple[Attachment, ...] = ()
                  ) -> AsyncIterator[Event | TurnResult]:
        """`ask` for an asyncio front end (serve): the events, then the TurnResult (recorded). Tools
        are the client's own here (passed through), so there is no tool loop. The checks run at the
        call; the generator is run_turn_async's own, not one around it that every event passes through."""
        prompt, attachments, request, _runner = self._begin(prompt, attachments)
        provider = cast(AsyncProvider, self.target.provider)
        return run_turn_async(provider, request, retry=self.options.retry, price=self._price,
                              record=functools.partial(self._record, prompt, attachments))

    def _notice(self, message: str) -> None:
        if self.ui is not None:
            self.ui.notice(message)

    def system_prompt(self, summary: Summary | None) -> str | None:
        """The system prompt sent: the conversation's, with `summary` as its last paragraph."""
        from streamchat.compaction import system_with

        return system_with(self.conversation.system, summary)

    def compact(self, prompt: str = "", *, everything: bool = False) -> Summary | None:
        """Summarize older turns so the request for `prompt` fits (`everything`: all of them, /compact)."""
        from streamchat.compaction import compact

        summary = compact(self, prompt, everything=everything)
        if summary is not None and self.log is not None:
            self.log.keep_summary(self.conversation)
        return summary

    def _on_overflow(self, prompt: str | None, attachments: tuple[Attachment, ...], sent: ChatRequest
                     ) -> Callable[[ChatRequest], ChatRequest | None] | None:
        """When the provider refuses the request as too long (the estimate was wrong): every turn
        compacted, and the request (with any tool steps after it) rebuilt for one more try."""
        if not self.compacting or prompt is None or not self.conversation.turns:
            return None

        def smaller(request: ChatRequest) -> ChatRequest | None:
            from streamchat.compaction import compact, request_tokens

            # the window is smaller than the estimate thought: at most half of what was refused, to be safe
            if compact(self, prompt, everything=True, spinner=False,
                       window=request_tokens(None, request.messages) // 2) is None:
                return None
            return replace(request, messages=self.request(prompt, attachments).messages
                           + request.messages[len(sent.messages):])
        return smaller

    def _begin(self, prompt: str | None, attachments: tuple[Attachment, ...]
               ) -> tuple[str | None, tuple[Attachment, ...], ChatRequest, ToolRunner | None]:
        """Checks and the request, before anything is sent."""
        runner = self._runner()
        if self.overrides.schema is not None and not self.target.config.spec.schemas:
            raise BadRequestError(f"{self.model_name} cannot answer in a JSON schema",
                                  hint="use a model that can (e.g. -m openai:gpt-4o-mini), or drop --schema")
        if not self.target.ready and self.ui is not None:  # a question typed before the warm-up ended
            with self.ui.spinner("starting"):
                self.target.provider  # noqa: B018
        if prompt is not None:
            prompt, attachments = self._fit(prompt, attachments, self._notice)
            if self.compacting and self.conversation.turns:
                self.compact(prompt)
        return prompt, attachments, self.request(prompt, attachments), runner

    def _record(self, prompt: str | None, attachments: tuple[Attachment, ...], result: TurnResult) -> TurnResult:
        """Add the turn to the conversation and the log; the result as saved (with its ids)."""
        answer_id = None
        if self.log is not None and prompt is not None:
            answer_id = self.log.record(self.conversation, *self.target.answered(), prompt, result, attachments)
            self.log.keep_summary(self.conversation)
        if answer_id is not None:
            result = replace(result, conversation_id=self.conversation.id, turn_id=answer_id)
        self.conversation.add(Turn(prompt or "", result, answer_id, self.model_name, attachments))
        return result

    def _sendable(self, history: list[Message]) -> list[Message]:
        """Earlier turns' attachments this model cannot take are left out, and the user is told."""
        if not any(m.attachments for m in history):
            return history
        accepts = self.target.provider.accepts
        out, dropped = [], 0
        for m in history:
            kept = tuple(a for a in m.attachments if ("image" if a.is_image else "pdf") in accepts)
            dropped += len(m.attachments) - len(kept)
            out.append(replace(m, attachments=kept) if len(kept) != len(m.attachments) else m)
        if dropped and self.ui is not None:
            self.ui.notice(f"{dropped} earlier attachment(s) not sent: {self.model_name} cannot take them")
        return out

    def _price(self, stats: Stats) -> float | None:
        from streamchat.cost import turn_cost

        provider, model = self.target.answered()  # a route's deployment, else the target's own
        config = self.target.config if provider == self.target.provider_name else self.settings.providers[provider]
        return turn_cost(self.settings, config, model, stats)

    def context_use(self, prompt: str = "") -> tuple[int, int | None]:
        """(tokens the next request would hold, the model's window or None): the provider's reported
        input of the last turn plus its answer, and an estimate for what is new."""
        return self._estimate(prompt), self._window()

    def _window(self) -> int | None:
        """The model's context window, looked up once per model (the toolbar asks on every redraw)."""
        from streamchat.cost import context_window

        if self.model_name not in self._windows:
            self._windows[self.model_name] = context_window(self.settings, self.target.config, self.target.model)
        return self._windows[self.model_name]

    def _estimate(self, prompt: str) -> int:
        """Tokens the next request would hold: the provider's count of the last exchange, estimates for the rest."""
        from streamchat.cost import estimate_tokens

        last = self.conversation.last
        if last is not None and last.result.stats.input_tokens:
            used = last.result.stats.input_tokens + last.result.stats.tokens
        else:
            summary = self.conversation.current_summary if self.compacting else None
            used = sum(estimate_tokens(m.content) for m in self.conversation.history(summary))
            used += estimate_tokens(self.system_prompt(summary) or "")
        return used + (estimate_tokens(prompt) if prompt else 0)

    def check_context(self, prompt: str, *, repl: bool = False) -> None:
        """Refuse a question that would clearly overflow the model's context (before spending anything).
        The hint names /new and /undo only in the REPL (`repl`): a shell has no such commands.

        A conversation smaller than any hosted model's window is not looked up: the price database
        that holds the windows costs ~45 ms to load, on every one-shot."""
        from streamchat.cost import SMALLEST_WINDOW, window_from_database

        provider = self.target.config
        used = self._estimate(prompt)
        if used <= SMALLEST_WINDOW and self.model_name not in self._windows \
                and window_from_database(provider, self.target.model):
            return
        window = self._window()
        if window is not None and used > window and not self._compaction_fits(prompt, window):
            from streamchat.errors import ContextOverflowError

            option = provider.spec.window_option
            raise ContextOverflowError(
                f"the prompt is too long for {self.model_name}: it would need about {used} tokens, the model takes {window}",
                hint=f"shorten the input, or raise {option} in [providers.{provider.name}]" if option
                else "shorten the input, start anew (/new), or drop turns (/undo)" if repl
                else "shorten the input or use a model with a larger context")

    def _compaction_fits(self, prompt: str, window: int) -> bool:
        """Whether compacting every turn would make room for `prompt` (then it is no overflow)."""
        from streamchat.compaction import summary_budget
        from streamchat.cost import estimate_tokens

        if not self.compacting or not self.conversation.turns:
            return False
        return estimate_tokens(self.conversation.system or "") + summary_budget(window) + estimate_tokens(prompt) <= window

    @property
    def cost(self) -> float | None:
        """The conversation's cost so far (None when a turn's price is unknown)."""
        costs = [t.result.stats.cost_usd for t in self.conversation.turns]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    def _fit(self, prompt: str, attachments: tuple[Attachment, ...], notice: Callable[[str], None]
             ) -> tuple[str, tuple[Attachment, ...]]:
        accepts = self.target.provider.accepts
        kept: list[Attachment] = []
        for a in attachments:
            kind = "image" if a.is_image else "pdf"
            if kind in accepts:
                kept.append(a)
            elif kind == "pdf":
                from streamchat.attachments import pdf_text

                prompt += f'\n\n<source name="{a.name}">\n{pdf_text(a)}\n</source>'
                notice(f"{a.name}: {self.target.provider_name} cannot read PDFs, so its text was sent instead")
            else:
                raise BadRequestError(f"{self.model_name} cannot take images ({a.name})",
                                      hint="use a model that sees images, e.g. -m openai:gpt-4o-mini")
        return prompt, tuple(kept)

    def retry(self, sink: Sink) -> TurnResult | None:
        """Ask the last question again; the old answer leaves the context (the log keeps it as a branch)."""
        turn = self.conversation.drop_last()
        return None if turn is None else self.ask(turn.prompt, sink, attachments=turn.attachments)

    def undo(self) -> Turn | None:
        """Take the last exchange out of the conversation; the log keeps it, marked undone."""
        turn = self.conversation.drop_last()
        if turn is not None and self.log is not None:
            self.log.undo(self.conversation, turn)
        return turn

    def fork(self) -> Conversation:
        """A new conversation that starts from this point (saved on its first answer, with its origin)."""
        old = self.conversation
        self.conversation = Conversation(system=old.system, model=old.model, turns=list(old.turns), forked_from=old.id)
        return self.conversation

    def alternative(self, number: int | None = None) -> tuple[int, int] | None:
        """Switch the last answer to the `number`th logged for the same question (a race's in -m
        order, then /retry's), or to the next one (None); (position, count), None without any."""
        return None if self.log is None else self.log.switch(self.conversation, number)

    # -- a race: one question, several models (race.py) ------------------------------------
    def sibling(self, model: str) -> ChatSession:
        """A session asking `model` as this one asks (options, schema, system prompt), over a copy of
        the conversation, without the log: a race's lane (the race saves its answer). A bad name or
        option fails here, before anything is sent."""
        conversation = replace(self.conversation, turns=list(self.conversation.turns))
        lane = ChatSession(self.settings, replace(self.overrides, model=model), conversation=conversation, ui=self.ui,
                           compact=self.compacting)
        lane.conversation.system = self.conversation.system  # a REPL's /system holds for its races too
        lane.params()
        return lane

    def hold(self, prompt: str, attachments: tuple[Attachment, ...], lanes: list[ChatSession]) -> list[int | None]:
        """Log `prompt` once per lane, each with its answer still to come, before anything is sent: the
        answers are alternatives of one question in the lanes' order, whichever ends first."""
        if self.log is None:
            return [None] * len(lanes)
        pending = TurnResult(outcome=Outcome.INTERRUPTED)  # what stays if the process dies mid-race
        return [self.log.record(self.conversation, lane.target.provider_name, lane.target.model, prompt, pending,
                                attachments) for lane in lanes]

    def settle(self, answer_id: int | None, result: TurnResult, lane: ChatSession) -> TurnResult:
        """Save `lane`'s held answer as it ended (by the deployment that answered, when its model is a
        route); the result with where it was saved."""
        if answer_id is None or self.log is None:
            return result
        self.log.replace_answer(self.conversation, answer_id, result, answered=lane.target.answered())
        return replace(result, conversation_id=self.conversation.id, turn_id=answer_id)

    def adopt(self, turn: Turn) -> None:
        """Continue the conversation from `turn`, an answer already logged (a race's chosen one)."""
        self.conversation.add(turn)
        if self.log is not None and turn.id is not None:
            self.log.choose(self.conversation, turn)

    # -- conversation commands ---------------------------------------------------------------
    def new(self) -> None:
        """A fresh conversation with the same model and system prompt."""
        self.conversation = Conversation(system=self.conversation.system)

    def load(self, cid: str | int) -> Conversation:
        """Resume a logged conversation, by id or name (its own system prompt, none if it had none)."""
        self.conversation = self._log().load(cid)
        return self.conversation

    def rename(self, name: str) -> None:
        """Name this conversation (a new one keeps the name until its first answer saves it)."""
        self._log().rename(self.conversation, name)

    def _log(self) -> ConversationLog:
        if self.log is None or self.log.db is None:
            from streamchat.errors import UsageError

            raise UsageError("the conversation log is off", hint="remove --no-log / log = false to use it")
        return self.log

    def set_overrides(self, overrides: Overrides) -> None:
        """New options (a REPL /role): sampling and system prompt from now on, the model if it changes."""
        model_changed = overrides.model != self.overrides.model
        before = self.overrides, self.options, self.conversation.system, self.target
        self.overrides = overrides
        self.options = merge(self.settings, overrides)
        self.conversation.system = self.options.system
        try:
            if model_changed and overrides.model:
                self.set_model(overrides.model)
            self.params()  # a bad option is refused when it is set (and nothing changes), not at the next question
        except StreamchatError:
            self.overrides, self.options, self.conversation.system, self.target = before
            raise

    def set_schema(self, schema: ResponseSchema | None) -> None:
        """Answers as JSON matching `schema` from now on (None: prose again); nothing else changes
        (set_overrides would also reset a system prompt set with /system)."""
        self.overrides = replace(self.overrides, schema=schema)

    def set_system(self, text: str | None) -> None:
        self.conversation.system = text or None

    def set_model(self, spec: str) -> None:
        self.target = resolve_target(self.settings, spec, self.options.timeout, self.ui, warm=self.warm,
                                     notice=self._notice if self.ui is not None else None)
        self.target.start()

    def start_warm_up(self) -> None:
        """Begin loading the provider (and starting enabled tool servers) in the background; the
        REPL calls it once its prompt is drawn."""
        self.target.start()
        if self.toolbox is not None:
            self.toolbox.start()
