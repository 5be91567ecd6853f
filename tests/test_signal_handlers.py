"""Ctrl-C around a turn, in-process: what the SIGINT handler is before, during and after."""

from __future__ import annotations

import os
import signal

import pytest

from streamchat import signals


def test_a_second_ctrl_c_after_an_interrupted_turn_is_dropped():
    """The second of two quick Ctrl-C presses can reach the process after the turn ended (the
    terminal is cooked until the next prompt): it was raised inside asyncio's loop set-up and
    printed a traceback (test_double_ctrl_c_leaves_no_traceback, under load). Now it is dropped
    until the REPL reads its next line, and Ctrl-C raises again from there."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(KeyboardInterrupt), signals.turn():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the late second press: no KeyboardInterrupt
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C after the interrupted turn was raised")
        signals.after_prompt()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_turn_not_interrupted_puts_back_the_handler_it_found():
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with signals.turn():
            pass
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
