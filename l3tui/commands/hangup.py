"""SIGHUP: the terminal l3tui runs in is gone (an SSH session dropped, the tmux session was
killed, the window closed), or someone sent the signal. Either way l3tui cancels what it
runs and exits cleanly, like on SIGTERM; when the terminal is really gone, stdin, stdout and
stderr are first pointed at /dev/null, because every write to a hung-up terminal fails
with EIO (the summary, Textual restoring the screen, an error message) and would turn a
clean exit into a crash.

l3tui started under `nohup` (SIGHUP ignored) keeps ignoring it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

LOST = "terminal lost (SIGHUP)"
"""The reason recorded on executions cancelled because the terminal went away."""


class Hangup:
    """Handle SIGHUP on the running loop: `on_hangup(reason)` is called on each one."""

    def __init__(self, on_hangup: Callable[[str], None]) -> None:
        self.on_hangup = on_hangup
        self.ttys = [fd for fd in (0, 1, 2) if _isatty(fd)]
        """The descriptors that were a terminal when we started."""
        self.installed = False
        self.lost = False

    def install(self) -> Hangup:
        if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
            return self  # nohup: the user asked to survive the terminal
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._handle)
        self.installed = True
        return self

    def remove(self) -> None:
        if self.installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self.installed = False

    def _handle(self) -> None:
        self.detach()
        self.on_hangup(LOST if self.lost else "SIGHUP")

    def write_failed(self) -> bool:
        """A write raised OSError: if our terminal hung up (the write came before the
        signal), detach, act as on SIGHUP (unless it is ignored: nohup) and return True;
        else False (not ours to handle)."""
        if not self.detach():
            return False
        if self.installed:
            self.on_hangup(LOST)
        return True

    def detach(self) -> bool:
        """Point every descriptor whose terminal hung up at /dev/null; True if one had."""
        gone = [fd for fd in self.ttys if not _isatty(fd)]
        if not gone:
            return False
        self.lost = True
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for fd in gone:
                os.dup2(null, fd)
        finally:
            os.close(null)
        self.ttys = [fd for fd in self.ttys if fd not in gone]
        return True


def _isatty(fd: int) -> bool:
    """False for a terminal that hung up too (tcgetattr fails with EIO)."""
    with contextlib.suppress(OSError):
        return os.isatty(fd)
    return False
