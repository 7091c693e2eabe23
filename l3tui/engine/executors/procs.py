"""This machine's processes as /proc shows them: start times on the boot clock, a scan of
(pid, state, ppid, pgrp, session, start), environment look-ups, and signalling or reaping a
process only while it is provably the one we looked at (same pid and same start time, held
by a pidfd, so a reused pid is never touched), and this process's own memory peak. Shared
by the local executor, its containment and crash recovery; it decides nothing about which
process belongs to whom.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from typing import NamedTuple

PR_SET_CHILD_SUBREAPER = 36


_subreaper_done = False


def become_subreaper() -> bool:
    """Orphans of our tasks re-parent to us (and are reaped) instead of to PID 1."""
    global _subreaper_done
    if _subreaper_done:
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper_done = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper_done = False
    return _subreaper_done


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Proc(NamedTuple):
    """One line of /proc/PID/stat, the fields we use."""

    pid: int
    state: bytes
    ppid: int
    pgrp: int
    sid: int
    start: int
    """Start time in clock ticks since boot: with the pid, a process's identity."""

    @property
    def started_s(self) -> float:
        return self.start / CLOCK_TICKS

    @property
    def zombie(self) -> bool:
        return self.state == b"Z"


def read_file(path: str, size: int = 4096) -> bytes | None:
    """One small /proc file, unbuffered (half the cost of `open()` per file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _parse(pid: int, stat: bytes) -> Proc:
    fields = stat[stat.rfind(b")") + 2 :].split()  # comm may hold spaces and parentheses
    return Proc(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def read_proc(pid: int) -> Proc | None:
    """The process now holding `pid`, or None."""
    stat = read_file(f"/proc/{pid}/stat")
    return _parse(pid, stat) if stat else None


def scan() -> list[Proc]:
    """Every process, from /proc (about 17 µs per process)."""
    out: list[Proc] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if entry.isdigit() and (stat := read_file(f"/proc/{entry}/stat")):
            out.append(_parse(int(entry), stat))
    return out


def own_children() -> list[Proc] | None:
    """This process's children (of every thread), from /proc/self/task/*/children: a few
    files instead of every process on the machine. None where the kernel has no such file
    (CONFIG_PROC_CHILDREN). A child that changes while the files are read may be missed:
    callers look again later."""
    me = os.getpid()
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return None
    pids: set[int] = set()
    for tid in threads:
        text = read_file(f"/proc/self/task/{tid}/children", 1 << 20)
        if text is None:
            if not os.path.exists(f"/proc/self/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        pids.update(int(pid) for pid in text.split())
    return [p for pid in pids if (p := read_proc(pid)) is not None and p.ppid == me]


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in seconds since boot (immune to wall-clock changes), or None if
    it is gone. Recovery compares it with the boot-clock reading recorded at spawn (the
    two agree within one 10 ms clock tick), so a reused pid is never mistaken for ours."""
    proc = read_proc(pid)
    return proc.started_s if proc else None


def scan_processes() -> list[tuple[int, bytes, int, int]]:
    """(pid, state, ppid, pgrp) of every process, from /proc."""
    return [(p.pid, p.state, p.ppid, p.pgrp) for p in scan()]


def group_has_live_member(pgid: int) -> bool:
    """kill(0) succeeds on zombies too; look at the members' states."""
    return any(p.pgrp == pgid and not p.zombie for p in scan())


def reap_orphans(pgids: set[int], exclude: set[int] | None = None) -> int:
    """Reap zombie children of ours that belong to task groups (orphans re-parented to us as
    subreaper). Never touches other children, whose owners wait for them."""
    reaped = 0
    exclude = exclude or set()
    me = os.getpid()
    for p in scan():
        if p.ppid == me and p.zombie and p.pgrp in pgids and p.pid not in exclude:
            try:
                if os.waitpid(p.pid, os.WNOHANG)[0] == p.pid:
                    reaped += 1
            except ChildProcessError:
                pass
    return reaped


def environ_value(pid: int, name: str) -> str | None:
    """`name` in the environment `pid` started with (None: unset, unreadable or gone)."""
    data = read_file(f"/proc/{pid}/environ", 1 << 20)
    if not data:
        return None
    prefix = name.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode("utf-8", "replace")
    return None


def _pinned(pid: int, start: int) -> int | None:
    """A pidfd for `pid` if it is still the process that started at `start`, else None.

    The pidfd is opened first and the start time read after: if the process is still the
    one we looked at, the pidfd holds it, and signals sent through it cannot reach a
    process that takes the pid later."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    now = read_proc(pid)
    if now is None or now.start != start:
        os.close(fd)
        return None
    return fd


def signal_same(pid: int, start: int, sig: int) -> bool:
    """Send `sig` to `pid` only if it is still the process that started at `start`."""
    fd = _pinned(pid, start)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def alive_same(pid: int, start: int) -> bool:
    """`pid` is still the process that started at `start`, and not a zombie."""
    now = read_proc(pid)
    return now is not None and now.start == start and not now.zombie


def reap_same(pid: int, start: int) -> bool:
    """Reap `pid` if it is a zombie child of ours that started at `start` (an escapee that
    re-parented to us); never a child someone else in this process waits for."""
    now = read_proc(pid)
    if now is None or now.start != start or not now.zombie or now.ppid != os.getpid():
        return False
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    return False


_own_peak_kib = 0


def above_own_peak(usage: resource.struct_rusage) -> bool:
    """Whether a child's ru_maxrss is above this process's own memory high-water mark.

    Not RUSAGE_SELF's ru_maxrss: that, too, holds what l3tui's parent weighed when it
    started l3tui (CI's 300 MB pytest hid every task under that). VmHWM is this process's
    memory alone, and only grows, so it is read again only when a child is above the last
    reading."""
    global _own_peak_kib
    if usage.ru_maxrss > _own_peak_kib:
        _own_peak_kib = vm_hwm_kib()
    return usage.ru_maxrss > _own_peak_kib


def vm_hwm_kib() -> int:
    """This process's own peak resident memory in KiB (VmHWM), not what it inherited."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
