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
elsewhere SO_REUSEPORT does not spread connections (or is absent), and the shared socket stays.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from typing import Any

from streamchat.errors import ConfigError
from streamchat.exit_status import ExitStatus

STARTUP_FAILURE = ExitStatus.CONFIG  # the app's startup failed (the model or config serve was given); uvicorn.run exits 3 too


def spreads_connections() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def address(host: str, port: int) -> str:
    """host:port as a URL writes it: an IPv6 address in brackets ([::1]:8765)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bound_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port (in the port's SO_REUSEPORT group with reuse_port), or a
    ConfigError naming the address when it is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
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


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket of this worker's own on host:port, in the port's SO_REUSEPORT group."""
    sock = bound_socket(host, port, reuse_port=True)
    sock.set_inheritable(True)
    return sock


def check_port_free(host: str, port: int) -> None:
    """Fail now, in the parent, if anything holds the port: a bind without SO_REUSEPORT is
    refused even by a group of SO_REUSEPORT sockets, so a second `serve --workers` on the same
    port is an error instead of silently taking half of the first one's connections."""
    bound_socket(host, port).close()


def run_server(config: Any, sock: socket.socket) -> None:
    """One process on `sock`, a `bound_socket` (serve.accept's greedy accept serves the sockets it
    is given; uvicorn's own host/port server would keep libuv's one accept per loop turn)."""
    from uvicorn import Server

    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down on
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class EachWorkerBinds:
    """In place of uvicorn's shared socket: pickled to each worker, it unpickles as a new
    `reuse_port_socket` there."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, ...]:
        return (reuse_port_socket, (self.host, self.port))


def run_workers(config: Any) -> None:
    """uvicorn's own supervisor (start, health checks, restarts, signals) over the workers, once
    `check_port_free` has passed. Older uvicorn releases take the workers' entry point as
    `target`; newer ones build it themselves."""
    import inspect
    from typing import cast

    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sockets = [cast(socket.socket, EachWorkerBinds(config.host, config.port))]
    if "target" in inspect.signature(Multiprocess).parameters:
        Multiprocess(config, target=Server(config).run, sockets=sockets).run()  # type: ignore[call-arg, unused-ignore]
    else:
        Multiprocess(config, sockets=sockets).run()
