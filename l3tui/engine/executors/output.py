"""Task output: split into lines, cleaned for display, written to a capped log file.

The log keeps the raw bytes up to the cap (minus a reserve for the tail); past it, bytes are
only counted, and the last few KiB are kept so the end of a flood (usually the error) is in
the log after a one-line notice. Memory stays flat whatever a task prints. The file is
created with the first byte of output (mode 0600, whatever the umask): a task that prints
nothing leaves no log file.

When secrets are in force for the attempt, every occurrence is replaced by `***` before the
output goes anywhere (log file, lines, metrics, last line). Masking works on whole lines, so
a secret split across two reads is still found: output is held back until its line ends (or
grows past `MAX_LINE`, and then a secret that straddles the cut is kept whole).

A log that cannot be written (full or read-only disk) is given up with one warning: the task
runs on, its lines still reach the events and the screen; a disk must not fail a task.

`FdWatch` holds the tasks' output pipes (and exit pidfds) for the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from l3tui.config.secrets import MIN_SECRET_CHARS
from l3tui.sanitize import clean, split_lines

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
TAIL_BYTES = 32 * 1024
METRIC_PREFIX = b"L3METRIC "
_METRIC_BYTES = re.compile(b"L3METRIC")
_METRIC = re.compile(
    r"^L3METRIC\s+([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(-?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)


def parse_metric(line: str) -> tuple[str, float] | None:
    """`L3METRIC tests_passed=118` -> ('tests_passed', 118.0)."""
    match = _METRIC.match(line)
    if not match:
        return None
    try:
        return match.group(1), float(match.group(2))
    except ValueError:
        return None


MASK = "***"


class SecretMask:
    """Replaces every occurrence of the secrets in force for one attempt with `***`, in text
    (argv, messages) and in raw output bytes. A multi-line secret is also masked line by
    line (output is masked on lines); lines of it shorter than `MIN_SECRET_CHARS` are not."""

    __slots__ = ("_bytes", "_text", "longest")

    def __init__(self, secrets: Iterable[str]) -> None:
        pieces: set[str] = set()
        for secret in secrets:
            pieces.add(secret)
            pieces.update(p for p in secret.splitlines() if len(p) >= MIN_SECRET_CHARS)
        pieces.discard("")
        if not pieces:
            raise ValueError("a SecretMask needs at least one non-empty secret")
        # Longest first: at one position the regex takes the first alternative that matches,
        # so a secret that contains another is masked whole.
        texts = sorted(pieces, key=len, reverse=True)
        raw = sorted((p.encode("utf-8", "surrogateescape") for p in pieces), key=len,
                     reverse=True)  # fmt: skip
        self._text = re.compile("|".join(map(re.escape, texts)))
        self._bytes = re.compile(b"|".join(map(re.escape, raw)))
        self.longest = len(raw[0])

    def text(self, value: str) -> str:
        return self._text.sub(MASK, value)

    def argv(self, argv: Iterable[str]) -> tuple[str, ...]:
        return tuple(self._text.sub(MASK, arg) for arg in argv)

    def data(self, value: bytes) -> bytes:
        return self._bytes.sub(MASK.encode(), value)

    def safe_cut(self, data: bytes, cut: int) -> int:
        """`cut`, or the end of a secret that straddles it."""
        for match in self._bytes.finditer(data, max(0, cut - self.longest + 1)):
            if match.start() >= cut:
                break
            if match.end() > cut:
                return match.end()
        return cut


def open_private_log(path: str | Path) -> BinaryIO:
    """The log file for appending, created 0600 whatever the umask (task output may hold
    what only its owner should read)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with contextlib.suppress(OSError):  # a file system without modes keeps what it has
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


class OutputCapture:
    """Feed it chunks of bytes; it writes the log and hands clean lines to `on_lines`."""

    def __init__(
        self,
        open_log: Callable[[], BinaryIO] | None,
        cap_bytes: int,
        on_lines: Callable[[list[str]], None],
        on_metric: Callable[[str, float], None],
        mask: SecretMask | None = None,
    ) -> None:
        self._open_log = open_log
        self.mask = mask
        self._held = b""
        """Masked output only: the unfinished line, until it ends."""
        self.log: BinaryIO | None = None
        self.log_error: str | None = None
        """Why the log file was given up, or None."""
        self.head_cap = max(cap_bytes - min(TAIL_BYTES, cap_bytes // 4), 0)
        self.cap_bytes = cap_bytes
        self.on_lines = on_lines
        self.on_metric = on_metric
        self.total_bytes = 0
        self.written = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self._partial = b""
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.last_line = ""

    def feed(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        if self.mask is not None:
            chunk = self._masked(chunk)
            if not chunk:
                return
        self._take(chunk)

    def _masked(self, chunk: bytes) -> bytes:
        """What can go out now, masked: up to the last line end; the rest is held."""
        assert self.mask is not None
        data = self._held + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > MAX_LINE:
            # A line without end: let most of it out, keeping back what may be the start
            # of a secret, and never cutting through one.
            cut = self.mask.safe_cut(data, len(data) - self.mask.longest + 1)
        self._held = data[cut:]
        return self.mask.data(data[:cut]) if cut else b""

    def _take(self, chunk: bytes) -> None:
        if self.written < self.head_cap:
            room = self.head_cap - self.written
            head, rest = chunk[:room], chunk[room:]
            try:
                if self.log is None and self._open_log is not None and not self.log_error:
                    self.log = self._open_log()
                if self.log is not None:
                    self.log.write(head)
                    self.log.flush()  # readers (`l3tui logs -f`, the log pane) follow the file
            except OSError as exc:
                self._give_up_log(exc)
            self.written += len(head)
            self._split(head)
            if rest:
                self._overflow(rest)
        else:
            self._overflow(chunk)

    def _split(self, data: bytes) -> None:
        data = self._partial + data
        end = data.rfind(b"\n")
        if end < 0:
            complete, self._partial = b"", data
        else:
            complete, self._partial = data[:end], data[end + 1 :]
        if len(self._partial) > MAX_LINE:  # a line without end: show it in pieces
            complete = self._partial if end < 0 else complete + b"\n" + self._partial
            self._partial = b""
        elif end < 0:
            return
        # One decode and one scan for the whole chunk, not one per line: during a flood
        # this runs for every MiB on the loop the console shares.
        lines = split_lines(complete)
        self.last_line = lines[-1] or self.last_line
        self.on_lines(lines)
        if _METRIC_BYTES.search(complete):  # `re` finds a literal faster than `in` here
            for line in lines:
                if line.startswith("L3METRIC"):
                    metric = parse_metric(line)
                    if metric:
                        self.on_metric(*metric)

    def _overflow(self, chunk: bytes) -> None:
        if self._partial:  # finish the line that straddles the cap
            self._split(b"\n")
        self.dropped_bytes += len(chunk)
        self.dropped_lines += chunk.count(b"\n")
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
            self._tail_size -= len(self._tail.popleft())
        if METRIC_PREFIX in chunk:
            for raw in chunk.split(b"\n"):
                if raw.startswith(METRIC_PREFIX):
                    metric = parse_metric(raw.decode("utf-8", "replace").strip())
                    if metric:
                        self.on_metric(*metric)
        end = chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1][-MAX_LINE:]
        if end:
            self.last_line = clean(end.decode("utf-8", "replace"))

    def skipped(self, nbytes: int, nlines: int) -> None:
        """Output past the cap that was counted elsewhere and never handed to `feed` (a
        remote runner keeps a flood on its worker): counted as dropped, as if fed."""
        self.total_bytes += nbytes
        self.dropped_bytes += nbytes
        self.dropped_lines += nlines

    def _give_up_log(self, exc: OSError) -> None:
        self.log_error = exc.strerror or str(exc)
        name = getattr(self.log, "name", "") if self.log is not None else ""
        log.warning("task log %s cannot be written (%s); the task runs on without it",
                    name or "file", self.log_error)  # fmt: skip
        if self.log is not None:
            try:
                self.log.close()
            except OSError:
                pass  # what could not be flushed is lost; the warning said so
            self.log = None

    def close(self) -> None:
        """Flush the last partial line and, if anything was dropped, the notice and tail."""
        if self.mask is not None and self._held:
            held, self._held = self._held, b""
            self._take(self.mask.data(held))
        if self._partial and not self.dropped_bytes:
            self._split(b"\n")
        if self.log is None:
            return  # the task printed nothing (no file), or its log was given up
        try:
            self._close_log(self.log)
        except OSError as exc:
            self._give_up_log(exc)
        self.log = None

    def _close_log(self, log_file: BinaryIO) -> None:
        if self.dropped_bytes:
            tail = b"".join(self._tail)[-TAIL_BYTES:]
            cut = tail.find(b"\n")
            tail = tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail
            notice = (
                f"\n[l3tui: log capped at {self.cap_bytes / 2**20:.1f} MiB: "
                f"{self.dropped_bytes:,} bytes ({self.dropped_lines:,} lines) dropped; "
                f"the last {len(tail):,} bytes follow]\n"
            ).encode()
            log_file.write(notice)
            log_file.write(tail)
        log_file.close()


class FdWatch:
    """The tasks' pipes and pidfds in one epoll set the loop watches as one fd: one `epoll_ctl`
    per fd added or removed, not `loop.add_reader`'s selector bookkeeping (~10 us a task)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.epoll = select.epoll()
        self.callbacks: dict[int, Callable[[], None]] = {}
        loop.add_reader(self.epoll.fileno(), self._ready)

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        self.epoll.register(fd, select.EPOLLIN)
        self.callbacks[fd] = callback

    def remove(self, fd: int) -> None:  # before `fd` is closed
        if self.callbacks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)

    def _ready(self) -> None:
        # Level-triggered (what is not handled now comes again); a callback may find nothing.
        for fd, _ in self.epoll.poll(0):
            callback = self.callbacks.get(fd)
            if callback is not None:
                callback()

    def close(self) -> None:  # not while a task is still watched
        if self.callbacks or self.epoll.closed:
            return
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
