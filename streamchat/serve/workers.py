"""serve's listening sockets and processes: one process on a socket bound here (`run_server`,
so that serve.accept's greedy server takes it), or `--workers N`: N uvicorn processes, with the
connections spread evenly over them.

uvicorn's workers share one listening socket, and whichever process wakes first accepts what is
waiting. Measured under a burst of 200 clients on 2 workers: one took 62–73 connections while
the other took 129–140, and every stream on the busier one waited longer for its first event
(p90 first event ~400 ms against ~260 ms). On Linux each worker here listens on a socket of its
own bound with SO_REUSEPORT, and the kernel spreads connections over them by hashing each one.

uvicorn hands its sockets to a spawned worker by pickling them; `EachWorkerBinds` stands in for
the shared socket and unpickles, in each worker, as that worker's own socket. Linux only:
elsewhere SO_REUSEPORT does not spread connections (or is absent), and the parent binds one
socket the workers share.

serve's banner (the URL) is printed only once the server listens, so a script that waits for it
and connects is not refused: every socket here is a `ListeningSocket`, which calls back when
uvicorn starts listening on it (after the app is built). With `--workers N` each worker tells the
parent through a socketpair, and the parent prints the banner when all N listen.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from streamchat.errors import ConfigError
from streamchat.exit_status import ExitStatus

STARTUP_FAILURE = ExitStatus.CONFIG  # the app's startup failed (the model or config serve was given); uvicorn.run exits 3 too


def spreads_connections() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def address(host: str, port: int) -> str:
    """host:port as a URL writes it: an IPv6 address in brackets ([::1]:8765)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListeningSocket(socket.socket):
    """A socket that calls `on_listen` (once) when it starts listening: uvicorn's server (or
    serve.accept's) calls `listen` on the sockets it is given once the app is built."""

    on_listen: Callable[[], None] | None = None

    def listen(self, *backlog: int) -> None:
        super().listen(*backlog)
        said, self.on_listen = self.on_listen, None
        if said is not None:
            said()


def bound_socket(host: str, port: int, *, reuse_port: bool = False) -> ListeningSocket:
    """A TCP socket bound to host:port (in the port's SO_REUSEPORT group with reuse_port), or a
    ConfigError naming the address when it is taken."""
    sock = ListeningSocket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        wrong_host = isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL
        raise ConfigError(f"cannot listen on {address(host, port)}: {err.strerror or err}",
                          hint="--host must be an address of this machine (127.0.0.1, ::1, 0.0.0.0) or a name for one"
                          if wrong_host else "choose another --port, or stop what is using it") from None
    return sock


def reuse_port_socket(host: str, port: int, ready: socket.socket | None = None) -> socket.socket:
    """A socket of this worker's own on host:port, in the port's SO_REUSEPORT group; once it
    listens, the worker says so on `ready` (its end of the parent's socketpair)."""
    sock = bound_socket(host, port, reuse_port=True)
    sock.set_inheritable(True)
    if ready is not None:
        sock.on_listen = functools.partial(_tell, ready)
    return sock


def _tell(ready: socket.socket) -> None:
    with contextlib.suppress(OSError), ready:  # the parent gone: nobody to tell
        ready.sendall(b".")


def _when_all_listen(ready: socket.socket, count: int, announce: Callable[[], None]) -> None:
    """Call `announce` once `count` workers have said they listen (on the parent's end of the pair)."""
    heard = 0
    with contextlib.suppress(OSError):
        while heard < count:
            got = ready.recv(64)
            if not got:
                return
            heard += len(got)
        announce()


def check_port_free(host: str, port: int) -> None:
    """Fail now, in the parent, if anything holds the port: a bind without SO_REUSEPORT is
    refused even by a group of SO_REUSEPORT sockets, so a second `serve --workers` on the same
    port is an error instead of silently taking half of the first one's connections."""
    bound_socket(host, port).close()


def run_server(config: Any, sock: ListeningSocket, announce: Callable[[], None]) -> None:
    """One process on `sock`, a `bound_socket` (serve.accept's greedy accept serves the sockets it
    is given; uvicorn's own host/port server would keep libuv's one accept per loop turn);
    `announce` once it listens."""
    from uvicorn import Server

    sock.on_listen = announce
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down on
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class EachWorkerBinds:
    """In place of uvicorn's shared socket: pickled to each worker, it unpickles as a new
    `reuse_port_socket` there."""

    def __init__(self, host: str, port: int, ready: socket.socket) -> None:
        self.host, self.port, self.ready = host, port, ready

    def __reduce__(self) -> tuple[Any, ...]:
        return (reuse_port_socket, (self.host, self.port, self.ready))  # `ready` goes over as a socket


def run_workers(config: Any, announce: Callable[[], None]) -> None:
    """uvicorn's own supervisor (start, health checks, restarts, signals) over `config.workers`
    workers; `announce` once every one listens. On Linux each binds its own socket (after
    `check_port_free` has passed); elsewhere they share one bound here. Older uvicorn releases
    take the workers' entry point as `target`; newer ones build it themselves."""
    import inspect
    from typing import cast

    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    if spreads_connections():
        heard, ready = socket.socketpair()  # kept open here: a restarted worker gets its end again
        threading.Thread(target=_when_all_listen, args=(heard, config.workers, announce), daemon=True,
                         name="serve-banner").start()
        sockets = [cast(socket.socket, EachWorkerBinds(config.host, config.port, ready))]
    else:
        shared = bound_socket(config.host, config.port)
        shared.set_inheritable(True)
        shared.listen(config.backlog)  # the workers share it: it listens from now on
        announce()
        sockets = [shared]
    if "target" in inspect.signature(Multiprocess).parameters:
        Multiprocess(config, target=Server(config).run, sockets=sockets).run()  # type: ignore[call-arg, unused-ignore]
    else:
        Multiprocess(config, sockets=sockets).run()
