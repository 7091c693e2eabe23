"""Task output: split into lines, cleaned for display, written to a capped log file.

The log keeps the raw bytes up to the cap (minus a reserve for the tail); past it, bytes are
only counted, and the last few KiB are kept so the end of a flood (usually the error) is in
the log after a one-line notice. Memory stays flat whatever a task prints. The file is
created with the first byte of output: a task that prints nothing leaves no log file.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from l3tui.sanitize import clean, split_lines

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


class OutputCapture:
    """Feed it chunks of bytes; it writes the log and hands clean lines to `on_lines`."""

    def __init__(
        self,
        open_log: Callable[[], BinaryIO] | None,
        cap_bytes: int,
        on_lines: Callable[[list[str]], None],
        on_metric: Callable[[str, float], None],
    ) -> None:
        self._open_log = open_log
        self.log: BinaryIO | None = None
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
        if self.written < self.head_cap:
            room = self.head_cap - self.written
            head, rest = chunk[:room], chunk[room:]
            if self.log is None and self._open_log is not None:
                self.log = self._open_log()
            if self.log is not None:
                self.log.write(head)
                self.log.flush()  # readers (`l3tui logs -f`, the log pane) follow the file
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

    def close(self) -> None:
        """Flush the last partial line and, if anything was dropped, the notice and tail."""
        if self._partial and not self.dropped_bytes:
            self._split(b"\n")
        if self.log is None:
            return  # the task printed nothing: no file
        if self.dropped_bytes:
            tail = b"".join(self._tail)[-TAIL_BYTES:]
            cut = tail.find(b"\n")
            tail = tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail
            notice = (
                f"\n[l3tui: log capped at {self.cap_bytes / 2**20:.1f} MiB: "
                f"{self.dropped_bytes:,} bytes ({self.dropped_lines:,} lines) dropped; "
                f"the last {len(tail):,} bytes follow]\n"
            ).encode()
            self.log.write(notice)
            self.log.write(tail)
        self.log.close()
