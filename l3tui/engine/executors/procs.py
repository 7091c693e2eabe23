"""This machine's processes as /proc shows them: start times on the boot clock, a scan of
(pid, state, ppid, pgrp), and reaping the orphans of task groups re-parented to us as child
subreaper. Shared by the local executor and crash recovery; it never signals anything."""

from __future__ import annotations

import ctypes
import os

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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in seconds since boot (immune to wall-clock changes), or None if
    it is gone. Recovery compares it with the boot-clock reading recorded at spawn (the
    two agree within one 10 ms clock tick), so a reused pid is never mistaken for ours."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19]) / _CLOCK_TICKS  # field 22 of stat(5), counted after "comm"


def scan_processes() -> list[tuple[int, bytes, int, int]]:
    """(pid, state, ppid, pgrp) of every process, from /proc."""
    out: list[tuple[int, bytes, int, int]] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        out.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return out


def group_has_live_member(pgid: int) -> bool:
    """kill(0) succeeds on zombies too; look at the members' states."""
    return any(pgrp == pgid and state != b"Z" for _, state, _, pgrp in scan_processes())


def reap_orphans(pgids: set[int], exclude: set[int] | None = None) -> int:
    """Reap zombie children of ours that belong to task groups (orphans re-parented to us as
    subreaper). Never touches other children, whose owners wait for them."""
    reaped = 0
    exclude = exclude or set()
    me = os.getpid()
    for pid, state, ppid, pgrp in scan_processes():
        if ppid == me and state == b"Z" and pgrp in pgids and pid not in exclude:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
            except ChildProcessError:
                pass
    return reaped
