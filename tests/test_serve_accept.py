"""serve's loop accepts every waiting connection per wake-up (streamchat.serve.accept), on real
sockets and the real uvloop (or asyncio's loop where uvloop is absent)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time

import pytest

from streamchat.serve.accept import GreedyServer, new_event_loop
from streamchat.serve.workers import bound_socket

CLIENTS = 30


class Counting(asyncio.Protocol):
    made: list[int] = []  # the loop turn in which each connection was made
    turn = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made.append(Counting.turn)
        transport.write(b"hi")


def _busy_turns(loop: asyncio.AbstractEventLoop) -> None:
    """Each loop turn runs this once and blocks 20 ms, as a turn does under load (10–40 ms measured)."""
    Counting.turn += 1
    time.sleep(0.02)
    loop.call_soon(_busy_turns, loop)


async def _all_made(loop: asyncio.AbstractEventLoop) -> None:
    """Until every client is connected (5 s at most), not a fixed second: accepted one a turn, the
    30 take 30 busy turns (~0.6 s), and the turns counted show it."""
    deadline = loop.time() + 5
    while len(Counting.made) < CLIENTS and loop.time() < deadline:
        await asyncio.sleep(0.005)


def test_a_burst_of_waiting_connections_is_accepted_in_one_wake_up():
    """libuv accepts one connection per loop turn: under load each turn is long, and the 30th client
    of a burst waited 30 turns in the kernel's queue (serve's tail under 200 clients)."""
    Counting.made, Counting.turn = [], 0
    loop = new_event_loop()
    clients: list[socket.socket] = []
    try:
        sock = bound_socket("127.0.0.1", 0)
        server = loop.run_until_complete(loop.create_server(Counting, sock=sock, backlog=128))
        if importlib.util.find_spec("uvloop"):  # else asyncio's own loop, which accepts greedily itself
            assert isinstance(server, GreedyServer)
        port = sock.getsockname()[1]
        for _ in range(CLIENTS):  # the kernel completes each handshake; they wait in the accept queue
            clients.append(socket.create_connection(("127.0.0.1", port)))
        loop.call_soon(_busy_turns, loop)
        loop.run_until_complete(_all_made(loop))
        assert len(Counting.made) == CLIENTS
        assert max(Counting.made) - min(Counting.made) <= 1, Counting.made  # one wake-up, not one per turn
        for client in clients:  # each connection works
            client.settimeout(5)
            assert client.recv(2) == b"hi"
        server.close()
        loop.run_until_complete(server.wait_closed())
        assert not server.is_serving() and sock.fileno() == -1
    finally:
        for client in clients:
            client.close()
        loop.close()


def test_the_loop_keeps_its_own_server_where_the_greedy_one_does_not_apply():
    """Servers serve starts on a socket of its own; host/port servers stay the loop's."""
    loop = new_event_loop()
    try:
        server = loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0))
        assert not isinstance(server, GreedyServer) and server.sockets
        server.close()
    finally:
        loop.close()


def test_a_taken_port_is_a_config_error_naming_it():
    from streamchat.errors import ConfigError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            bound_socket("127.0.0.1", port)


def test_an_ipv6_address_is_named_bracketed_as_in_a_url():
    """`cannot listen on ::1:8765` read as host ::1:8765; the error names it as the notice and a URL do."""
    from streamchat.errors import ConfigError

    with socket.socket(socket.AF_INET6) as holder:
        holder.bind(("::1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on \[::1\]:{port}:"):
            bound_socket("::1", port)


OUT_OF_DESCRIPTORS_SERVER = r"""
import asyncio, logging, resource, sys
from streamchat.serve.accept import new_event_loop
from streamchat.serve.workers import bound_socket

logging.basicConfig(level=logging.ERROR, format="%(message)s")

class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(b"hi")

loop = new_event_loop()
sock = bound_socket("127.0.0.1", 0)
server = loop.run_until_complete(loop.create_server(Hello, sock=sock, backlog=128))
import os
used = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(sock.getsockname()[1], flush=True)
loop.run_until_complete(loop.run_in_executor(None, sys.stdin.read))  # until the test closes stdin
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc")
def test_out_of_descriptors_pauses_accepting_then_serves_everyone(tmp_path):
    """EMFILE is not a reason to spin or to die: one line, a pause, and the clients that waited
    are served once descriptors free up (asyncio's own policy)."""
    script = tmp_path / "server.py"
    script.write_text(OUT_OF_DESCRIPTORS_SERVER)
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    try:
        port = int(proc.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(14)]  # twice what fits
        served = []
        for client in clients:  # each one served frees its descriptor on the server for those waiting
            client.settimeout(5)
            served.append(client.recv(2))
            client.close()
        assert served == [b"hi"] * 14
    finally:
        for client in clients:
            client.close()
        proc.stdin.close()
        proc.wait(10)
    errors = proc.stderr.read()
    assert "cannot accept connections (Too many open files); retrying in 1 s" in errors, errors
    assert errors.count("cannot accept") <= 6 and "Traceback" not in errors, errors  # a pause, not a spin
