"""The Python API: `get_model(name).prompt(text)` streams an answer through the CLI's own chat service.

A `Conversation` holds one `ChatSession` (the service the one-shot command, the REPL and serve
drive) and runs its turns in order, each on a worker thread: the session's blocking `ask()`
streams into a sink that keeps the text chunks, and the caller reads them, blocking or on
asyncio. Nothing here imports the terminal UI, the renderer or the CLI; the SDK is imported by the
first prompt, in its worker. `get_async_model` mirrors `get_model` on the same turns (see
`AsyncResponse` for why it does not use the SDKs' asyncio clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from streamchat.cancel import CancelToken
from streamchat.config import Settings, load_settings
from streamchat.errors import UsageError
from streamchat.events import Attachment, Event, Outcome, TextDelta, TurnResult, Usage
from streamchat.service import ChatSession, Overrides

if TYPE_CHECKING:
    from streamchat.store import ConversationLog

Attachable = Union[str, "os.PathLike[str]", Attachment]  # a file's path, or one already loaded


def _warn(message: str) -> None:
    """A library's warnings go through `warnings` (a caller filters them), never to stderr directly."""
    warnings.warn(message.removeprefix("warning: "), RuntimeWarning, stacklevel=2)


class _Turn:
    """One question: run by its conversation's worker through `ChatSession.ask`, its text chunks kept
    as they arrive for any number of readers (blocking or asyncio; a second reader replays them)."""

    def __init__(self, lane: _Lane, prompt: str, attachments: tuple[Attachment, ...], overrides: Overrides) -> None:
        self.lane, self.prompt, self.attachments, self.overrides = lane, prompt, attachments, overrides
        self.chunks: list[str] = []
        self.result: TurnResult | None = None
        self.error: BaseException | None = None  # raised before the turn could run (no key, a bad option…)
        self.done = False
        self.cancel = CancelToken()
        self._changed = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- the worker's side: a Sink ------------------------------------------------------------
    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta) and event.text:
            text = event.text
            self._update(lambda: self.chunks.append(text))

    def end(self, result: TurnResult) -> None:
        pass  # finish() follows once the turn is in the conversation (and the log)

    def finish(self, result: TurnResult | None = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            self.result, self.error, self.done = result, error, True

        self._update(settle)

    def _update(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that reader's loop has closed
                loop.call_soon_threadsafe(_wake, future)

    # -- the readers' side ---------------------------------------------------------------------
    def _ready(self, seen: int) -> bool:
        return len(self.chunks) > seen or self.done

    def wait(self, seen: int) -> None:
        """Block until there is a chunk past `seen`, or the end. Ctrl-C cancels the turn (its
        stream closes at once; the partial answer is kept) and is raised."""
        self.lane.start(self)
        try:
            with self._changed:
                self._changed.wait_for(lambda: self._ready(seen))
        except KeyboardInterrupt:
            self.cancel.cancel()
            raise

    async def wait_async(self, seen: int) -> None:
        """`wait` for an asyncio reader: cancelling its task cancels the turn."""
        self.lane.start(self)
        loop = asyncio.get_running_loop()
        with self._changed:
            if self._ready(seen):
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            self.cancel.cancel()
            raise

    def join(self) -> None:
        """Wait for the end (the next turn of the conversation waits so)."""
        with self._changed:
            self._changed.wait_for(lambda: self.done)

    def outcome(self) -> TurnResult:
        """The finished turn, or its fault raised as streamchat's typed error."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        if self.result.outcome is Outcome.FAILED and self.result.error is not None:
            raise self.result.error
        return self.result


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Lane:
    """A conversation's service, and the order its turns run in: each on a thread of its own, once
    the turn before it has ended (a turn read before an earlier one still goes after it).

    Daemon threads: a script that stops reading an answer and ends does not wait for the rest.
    """

    def __init__(self, settings: Settings, model: str, log: bool) -> None:
        self.settings, self.model, self.log = settings, model, log
        self.system: str | None = None  # the last one given: it holds for the turns after it
        self._session: ChatSession | None = None
        self._queued: list[_Turn] = []
        self._last: _Turn | None = None  # the last turn given a thread
        self._lock = threading.Lock()

    def add(self, turn: _Turn) -> None:
        with self._lock:
            self._queued.append(turn)

    def start(self, turn: _Turn) -> None:
        """Start `turn`, after the turns asked before it (lazily: a response starts when read)."""
        with self._lock:
            if turn not in self._queued:
                return
            while self._queued:
                first = self._queued.pop(0)
                previous, self._last = self._last, first
                threading.Thread(target=self._run, args=(first, previous), name="streamchat-api", daemon=True).start()
                if first is turn:
                    break

    def _run(self, turn: _Turn, previous: _Turn | None) -> None:
        if previous is not None:
            previous.join()
        log = None
        try:
            session = self._session_for(turn.overrides)
            session.log = log = self._open_log()  # in this thread: a SQLite connection belongs to the thread that opened it
            session.check_context(turn.prompt)
            result = session.ask(turn.prompt, turn, attachments=turn.attachments, cancel=turn.cancel)
        except BaseException as exc:  # handed to the reader, raised there
            turn.finish(error=exc)
        else:
            turn.finish(result)
        finally:
            if log is not None and log.db is not None:
                log.db.close()

    def _session_for(self, overrides: Overrides) -> ChatSession:
        if self._session is None:
            self._session = ChatSession(self.settings, overrides)
        else:
            self._session.set_overrides(overrides)
        return self._session

    def _open_log(self) -> ConversationLog | None:
        if not self.log:
            return None
        from streamchat.store import open_log

        log = open_log(enabled=True, warn=lambda _line: None, required=True)  # damaged: LogDamagedError
        if not log.write:  # asked for by name: an error, not the CLI's warning
            raise UsageError(f"log=True, but the conversation log {log.path} is unusable",
                             hint="set STREAMCHAT_DB to a writable file, or leave log=True out")
        log.warn = _warn
        return log


def _attachment(item: Attachable) -> Attachment:
    from streamchat.attachments import load

    return item if isinstance(item, Attachment) else load(os.fspath(item))


def _sampling(options: dict[str, Any] | None) -> dict[str, Any]:
    """`options` as Overrides fields: temperature, max_tokens and serve's sampling fields checked as
    serve checks a request's; any other option a provider takes (as -o) is checked against the
    model's provider when the turn starts."""
    from streamchat.providers.options import options_for
    from streamchat.providers.registry import all_specs
    from streamchat.serve.parse import SAMPLING, sampling
    from streamchat.serve.policy import Refused

    options = dict(options or {})
    known = ("temperature", "max_tokens", *sorted({name for spec in all_specs() for name in options_for(spec.type)}))
    unknown = sorted(set(options) - set(known))
    if unknown:
        # no provider takes it; the options of this model's provider are checked when the turn starts
        raise UsageError(f"unknown option(s): {', '.join(map(str, unknown))}",
                         hint="temperature, max_tokens, or an option the model's provider takes "
                              "(streamchat models --options PROVIDER lists them)")
    try:
        temperature, max_tokens, params = sampling(options)
    except Refused as exc:
        raise UsageError(f"option {exc.message}") from None
    params += tuple((k, v) for k, v in options.items() if k not in known[:2] and k not in SAMPLING)
    return {"temperature": temperature, "max_tokens": max_tokens, "params": params}


class _Answer:
    """What both kinds of response read once the turn has ended."""

    def __init__(self, turn: _Turn) -> None:
        self._turn = turn

    def _result(self) -> TurnResult:
        raise NotImplementedError

    @property
    def usage(self) -> Usage:
        """Tokens in and out as the provider reported them (out: counted chunks when it did not)."""
        stats = self._result().stats
        return Usage(input_tokens=stats.input_tokens, output_tokens=stats.tokens, cached_tokens=stats.cached_tokens,
                     cache_write_tokens=stats.cache_write_tokens)

    @property
    def cost_usd(self) -> float | None:
        """What the turn cost, priced as the CLI prices it (None: an unknown model or price)."""
        return self._result().stats.cost_usd

    def __repr__(self) -> str:
        state = "done" if self._turn.done else "pending"
        return f"<{type(self).__name__} {self._turn.lane.model} {state}>"


class Response(_Answer):
    """An answer: iterate it for the text chunks as they stream. Nothing is sent until it is read
    (iterated, or `.text()`, `.usage`, `.cost_usd`); a second iteration replays the chunks."""

    def __iter__(self) -> Iterator[str]:
        turn, seen = self._turn, 0
        while True:
            if seen < len(turn.chunks):
                seen += 1
                yield turn.chunks[seen - 1]
            elif turn.done:
                break
            else:
                turn.wait(seen)
        turn.outcome()

    def _result(self) -> TurnResult:
        for _ in self:
            pass
        return self._turn.outcome()

    def text(self) -> str:
        """The whole answer (waits for it)."""
        return self._result().text


class AsyncResponse(_Answer):
    """A Response for asyncio: `async for chunk in response`, `await response.text()`, or
    `await response` and then `.usage` / `.cost_usd`.

    The turn streams on the SDK's blocking client in the conversation's worker thread. The SDKs'
    asyncio clients (serve's) are built once per process and bound to the event loop that first
    used them: a script calling `asyncio.run()` twice failed its second answer with "Event loop
    is closed" once the first had left a pooled connection. Cancelling the reading task cancels
    the turn.
    """

    def __aiter__(self) -> AsyncIterator[str]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[str]:
        turn, seen = self._turn, 0
        while True:
            if seen < len(turn.chunks):
                seen += 1
                yield turn.chunks[seen - 1]
            elif turn.done:
                break
            else:
                await turn.wait_async(seen)
        turn.outcome()

    async def _finish(self) -> AsyncResponse:
        async for _ in self:
            pass
        return self

    def __await__(self) -> Generator[Any, None, AsyncResponse]:
        return self._finish().__await__()

    async def text(self) -> str:
        """The whole answer (waits for it)."""
        await self._finish()
        return self._turn.outcome().text

    def _result(self) -> TurnResult:
        if not self._turn.done:
            raise UsageError("the response has not finished", hint="await it (or iterate it) first")
        return self._turn.outcome()


R = TypeVar("R", bound=_Answer)


class Conversation(Generic[R]):
    """Turns that share their history: each prompt is sent after the exchanges before it."""

    def __init__(self, response: Callable[[_Turn], R], settings: Settings, model: str, log: bool) -> None:
        self._response: Callable[[_Turn], R] = response
        self._lane = _Lane(settings, model, log)

    @property
    def model(self) -> str:
        return self._lane.model

    def prompt(self, prompt: str, *, system: str | None = None, attachments: Iterable[Attachable] = (),
               options: dict[str, Any] | None = None) -> R:
        """Ask `prompt` (sent when the response is read). `system` holds for this and later turns;
        `options`: temperature, max_tokens, top_p, stop, seed, presence_penalty, frequency_penalty.
        A bad option or attachment raises here."""
        if not isinstance(prompt, str):
            raise UsageError(f"the prompt must be a string, not {type(prompt).__name__}")
        if system is not None and not isinstance(system, str):
            raise UsageError(f"system must be a string or None, not {type(system).__name__}")
        if isinstance(attachments, (str, bytes, os.PathLike)):  # iterated, its characters were "paths": "/ is a directory"
            raise UsageError("attachments is a list of paths, not one path", hint=f"attachments=[{str(attachments)!r}]")
        overrides = Overrides(model=self._lane.model, system=system if system is not None else self._lane.system, **_sampling(options))
        loaded = tuple(_attachment(a) for a in attachments)
        self._lane.system = overrides.system
        turn = _Turn(self._lane, prompt, loaded, overrides)
        self._lane.add(turn)
        return self._response(turn)


class _Model(Generic[R]):
    """A resolved model name: where its prompts go."""

    def __init__(self, response: Callable[[_Turn], R], settings: Settings, name: str, log: bool) -> None:
        self._response: Callable[[_Turn], R] = response
        self._settings, self.name, self.log = settings, name, log

    def conversation(self, *, log: bool | None = None) -> Conversation[R]:
        """A conversation with this model; `log` (default: the model's) writes it to the log."""
        return Conversation(self._response, self._settings, self.name, self.log if log is None else log)

    def prompt(self, prompt: str, *, system: str | None = None, attachments: Iterable[Attachable] = (),
               options: dict[str, Any] | None = None, log: bool | None = None) -> R:
        """One question on its own (a conversation of one turn); see `Conversation.prompt`."""
        return self.conversation(log=log).prompt(prompt, system=system, attachments=attachments, options=options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Model(_Model[Response]):
    def __init__(self, settings: Settings, name: str, log: bool = False) -> None:
        super().__init__(Response, settings, name, log)


class AsyncModel(_Model[AsyncResponse]):
    def __init__(self, settings: Settings, name: str, log: bool = False) -> None:
        super().__init__(AsyncResponse, settings, name, log)


def _resolve(name: str | None, settings: Settings | None) -> tuple[Settings, str]:
    """The settings (the config file the CLI reads) and `provider:model` for `name`, which is
    resolved as `-m` is: an alias, a provider's default, STREAMCHAT_MODEL or the config's default."""
    settings = settings if settings is not None else load_settings(warn=_warn)
    if settings.roles:  # as the CLI loads a config: a broken [roles.x] is its ConfigError now, not never
        from streamchat.roles import check_tables

        check_tables(settings)
    provider, model = settings.resolve(name)
    route = settings.route(name)  # a route stays one: its deployments are picked per request
    return settings, route.name if route is not None else f"{provider.name}:{model}"


def get_model(name: str | None = None, *, log: bool = False, settings: Settings | None = None) -> Model:
    """The model `name` names, as `streamchat -m NAME` resolves it (keys too, on the first prompt).
    An unknown name raises UsageError here; a config the CLI refuses at load (a broken [roles.x]
    too) ConfigError. `log=True`: its conversations go to the log."""
    return Model(*_resolve(name, settings), log)


def get_async_model(name: str | None = None, *, log: bool = False, settings: Settings | None = None) -> AsyncModel:
    """`get_model` for asyncio: its responses are read with `async for` and `await`."""
    return AsyncModel(*_resolve(name, settings), log)

