"""Run a turn for the server and hand its events to the response, through one asyncio queue.

The SDK adapters stream on asyncio (`ChatSession.ask_async`): the turn is a task on the
server's loop, with no thread per answer, so hundreds of streams share one loop fairly. The
local model is synchronous: its turn runs `ChatSession.ask` in a worker thread with a sink
that forwards events to the loop. Either way, when the client goes away or cancels, the
turn is cancelled and the upstream closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from streamchat.cancel import CancelToken
from streamchat.errors import StreamchatError
from streamchat.events import Attachment, Event, Outcome, TurnResult
from streamchat.service import ChatSession

log = logging.getLogger("streamchat.serve")


@dataclass(frozen=True)
class Finished:
    """The last item of a stream: the turn's result (ok, error or cancelled)."""

    result: TurnResult


class QueueSink:
    """Forwards events to the loop, with backpressure: when the loop (or the client) is
    more than HIGH_WATER events behind, the worker waits. A fast upstream then cannot
    starve the event loop of the GIL, and a slow client does not buffer a whole answer."""

    HIGH_WATER = 32

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event | Finished | None],
                 cancel: CancelToken) -> None:
        self.loop, self.queue, self.cancel = loop, queue, cancel
        self._pending = 0
        self._lock = threading.Lock()
        self._drained = threading.Event()
        self._outbox: list[Event | Finished] = []  # handed to the loop in one wake-up
        self._scheduled = False

    def _put(self, item: Event | Finished) -> None:
        """Queue for the loop; only the first item since the loop last ran wakes it (one
        cross-thread wake-up per burst, not per token: under load the loop would spend its
        time being woken)."""
        with self._lock:
            self._outbox.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            items, self._outbox, self._scheduled = self._outbox, [], False
        for item in items:
            self.queue.put_nowait(item)

    def consumed(self, count: int) -> None:
        """Called on the loop when `count` items were taken off the queue."""
        with self._lock:
            self._pending -= count
            if self._pending <= self.HIGH_WATER // 2:
                self._drained.set()

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        if self.cancel.cancelled:
            return  # the turn runner stops right after this event
        with self._lock:
            self._pending += 1
            behind = self._pending > self.HIGH_WATER
            if behind:
                self._drained.clear()
        self._put(event)
        while behind and not self._drained.wait(0.05):
            if self.cancel.cancelled:
                return

    def end(self, result: TurnResult) -> None:
        self._put(Finished(result))


class _LoopQueue(asyncio.Queue):  # type: ignore[type-arg]
    """asyncio.Queue bound to its loop when made. Its `get` asks `_get_loop()` on every wait for an
    empty queue, once per token here, and on 3.11 that is `get_running_loop()` (a getpid syscall)
    and a check under a global lock: ~3 % of serve's CPU under the load bench."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop


class _AsyncFeed:
    """The producer side for a turn on the loop: the same backpressure as QueueSink (a slow client
    does not buffer a whole answer), without threads."""

    def __init__(self, queue: asyncio.Queue[Event | Finished | None]) -> None:
        self.queue = queue
        self.room = asyncio.Event()
        self.room.set()

    def full(self) -> bool:
        return self.queue.qsize() > QueueSink.HIGH_WATER

    async def wait(self) -> None:
        self.room.clear()
        await self.room.wait()

    def consumed(self, _count: int) -> None:
        if self.queue.qsize() <= QueueSink.HIGH_WATER // 2:
            self.room.set()


class _Quiet:
    """The heartbeat of `TurnStream.batches`: None in the queue once its reader has waited `seconds`
    on an empty queue. One timer per stream, set again for what is left when it fires, instead of
    a timer made and cancelled around every wait (a libuv timer started and stopped per token)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event | Finished | None],
                 seconds: float) -> None:
        self.loop, self.queue, self.seconds = loop, queue, seconds
        self.since = loop.time()  # when the reader began its wait
        self.waiting = False
        self.timer = loop.call_later(seconds, self._fire)

    def _fire(self) -> None:
        left = self.since + self.seconds - self.loop.time()
        if self.waiting and left <= 0:
            self.queue.put_nowait(None)
            self.since, left = self.loop.time(), self.seconds
        self.timer = self.loop.call_later(left if left > 0 else self.seconds, self._fire)


class TurnStream:
    """An async iterator of events ending with `Finished`; `cancel()` stops the upstream."""

    def __init__(self, session: ChatSession, prompt: str | None, attachments: tuple[Attachment, ...] = ()) -> None:
        """`prompt` None: the conversation already ends with tool results to answer from."""
        self.session, self.prompt, self.attachments = session, prompt, attachments
        self.token = CancelToken()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self.on_end: Callable[[TurnResult], None] | None = None  # called once, on the loop, with the turn's result
        self.watcher: asyncio.Future[None] | None = None  # http_io's: cancels the turn if its client leaves

    def _ended(self, result: TurnResult) -> None:
        """The turn is over, however it ended (answered, failed, cancelled, never started): `on_end` runs once."""
        hook, self.on_end = self.on_end, None
        if result.error is not None:  # its client got a generic line (wire.client_message): the why is here
            log.warning("a turn on %s failed: %s", self.session.model_name, result.error)
        if hook is not None:
            hook(result)

    def cancel(self) -> None:
        """Stop the turn (called on the loop): the task is cancelled, or the worker sees the token."""
        self.token.cancel()
        if self._task is not None:
            self._task.cancel()
        if self.watcher is not None:
            self.watcher.cancel()
        if not self._started:
            self._ended(TurnResult(outcome=Outcome.CANCELLED))

    async def _produce(self, feed: _AsyncFeed) -> None:
        """The task: one turn on the loop; whatever ends it, the last item is Finished."""
        finished = False
        try:
            async for item in self.session.ask_async(self.prompt, attachments=self.attachments):
                if isinstance(item, TurnResult):
                    finished = True
                    self._ended(item)
                    feed.queue.put_nowait(Finished(item))
                else:
                    feed.queue.put_nowait(item)
                if feed.full():  # a coroutine only when the reader is behind, not one per event
                    await feed.wait()
        except StreamchatError as err:  # refused before sending (an attachment the model cannot take)
            finished = True
            failed = TurnResult(outcome=Outcome.FAILED, error=err)
            self._ended(failed)
            feed.queue.put_nowait(Finished(failed))
        except asyncio.CancelledError:
            pass
        finally:
            if not finished:
                cancelled = TurnResult(outcome=Outcome.CANCELLED)
                self._ended(cancelled)
                feed.queue.put_nowait(Finished(cancelled))

    def _ask(self, sink: QueueSink) -> None:
        """The worker: one turn; a refusal before sending (an attachment the model cannot take)
        still ends the stream, as a failed result."""
        try:
            result = self.session.ask(self.prompt, sink, attachments=self.attachments, cancel=self.token)
        except StreamchatError as err:
            result = TurnResult(outcome=Outcome.FAILED, error=err)
            sink.end(result)
        except BaseException:
            result = TurnResult(outcome=Outcome.CANCELLED)
            raise
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone
                sink.loop.call_soon_threadsafe(self._ended, result)

    async def events(self, heartbeat: float | None = None) -> AsyncIterator[Event | Finished | None]:
        """Yields events, then Finished; yields None after `heartbeat` seconds of silence."""
        async for batch in self.batches(heartbeat):
            if batch is None:
                yield None
                continue
            for item in batch:
                yield item

    async def batches(self, heartbeat: float | None = None) -> AsyncIterator[list[Event | Finished] | None]:
        """Like events(), but everything already queued comes as one list, so a busy server
        writes one chunk per wake-up instead of one per token.

        The heartbeat is a timer that puts None in the queue, not `asyncio.wait_for` around each
        wait: that runs the wait as a task of its own, so an event reached the response a loop turn
        or two after it was queued. Measured under 200 concurrent streams, where one turn of the
        loop takes 25–50 ms: 50–110 ms of every stream's wait for its first event.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | Finished | None] = _LoopQueue(loop)
        self._started = True
        consumed: Callable[[int], None]
        if self.session.streams_async:
            feed = _AsyncFeed(queue)
            self._task = asyncio.ensure_future(self._produce(feed))
            consumed = feed.consumed
        else:
            sink = QueueSink(loop, queue, self.token)
            threading.Thread(target=self._ask, args=(sink,), daemon=True, name="turn").start()
            consumed = sink.consumed
        quiet = _Quiet(loop, queue, heartbeat) if heartbeat else None
        try:
            while True:
                if quiet is not None and queue.empty():
                    quiet.since = loop.time()
                    quiet.waiting = True
                    try:
                        item = await queue.get()
                    finally:  # the client may leave while we wait
                        quiet.waiting = False
                else:
                    item = await queue.get()
                if item is None:  # nothing for `heartbeat` seconds
                    yield None
                    continue
                batch: list[Event | Finished] = [item]
                while not isinstance(batch[-1], Finished) and not queue.empty():
                    if (more := queue.get_nowait()) is not None:  # a heartbeat due just as an event came
                        batch.append(more)
                consumed(len(batch))
                yield batch
                if isinstance(batch[-1], Finished):
                    return
        finally:
            if quiet is not None:
                quiet.timer.cancel()
            self.cancel()  # client gone or done: the worker closes the upstream at its next event
