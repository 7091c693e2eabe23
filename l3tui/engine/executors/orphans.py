"""Escapees without cgroups. l3tui is a child subreaper, so a process that leaves its task's
process group (`setsid`) and loses its parent re-parents to l3tui instead of PID 1; by the
time a task's main process has ended, every process it left is in the subtree of one of
l3tui's children that is not a task leader (a "root"). After a task ends, a sweep looks at
the roots and ends each root's whole subtree when it provably came from tasks that have all
ended:

- its environment names a task (`L3_PROCESS_TAG`, set by the executor): that task;
- otherwise (`env -i` cleared it), and only when this process is l3tui alone
  (`adopt=True`: then every process re-parented to it descends from a task), every task
  that was running when the root started (start time against each task's time window):
  it is ended once all of them have, so it is never blamed on a task still running.

Processes are signalled through a pidfd after their start time is checked, so a pid reused
by an unrelated process is never touched. Sweeps are coalesced (one at most every
`every_s`) and run beside a task's completion, not in its path: a /proc scan costs about
17 µs per process on this machine. Also reaps zombie roots that are provably ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from l3tui.engine.executors.procs import (
    Proc,
    alive_same,
    environ_value,
    own_children,
    read_proc,
    reap_same,
    scan,
    signal_same,
)

log = logging.getLogger(__name__)

TAG_VAR = "L3_PROCESS_TAG"
TOLERANCE_S = 0.03
"""Start times are in 10 ms clock ticks; a window is widened by this much on each side."""
_instances = itertools.count(1)


@dataclass(slots=True)
class Window:
    """One task's time span: from spawn until its escapees are gone."""

    tag: str
    start: float
    """Boot-clock seconds at spawn."""
    exited: bool = False
    """Its main process ended and its process group was ended."""
    end: float | None = None
    """When the last process it left was gone (the window closed)."""

    def covers(self, started: float) -> bool:
        end = self.end if self.end is not None else float("inf")
        return self.start - TOLERANCE_S <= started <= end + TOLERANCE_S


_GONE = Window(tag="", start=0.0, exited=True, end=0.0)
"""The owner of a process tagged by one of our tasks whose window was already dropped."""


class OrphanTracker:
    """Time windows of tasks, the sweep that ends their escapees, and the reaping of them."""

    def __init__(
        self,
        grace_s: float,
        *,
        adopt: bool,
        kill: bool,
        every_s: float,
        claims_zombie: Callable[[Proc], bool] | None = None,
    ) -> None:
        self.grace_s = grace_s
        self.adopt = adopt
        self.kill = kill
        """False in cgroup mode: cgroups end escapees; the sweep only reaps."""
        self.every_s = every_s
        self.claims_zombie = claims_zombie
        me = os.getpid()
        self.prefix = f"{me}.{time.clock_gettime_ns(time.CLOCK_BOOTTIME)}.{next(_instances)}."
        self._tags = itertools.count(1)
        self.windows: dict[str, Window] = {}
        self.leaders: set[int] = set()
        """Pids of task main processes not yet reaped: our children, never roots."""
        self._condemned: dict[tuple[int, int], frozenset[str]] = {}
        """(pid, start) being ended -> tags of the windows it is ended for."""
        self._killed: set[tuple[int, int]] = set()
        """(pid, start) we signalled: we reap them if they end as our children."""
        self._wanted = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self.closing = False
        self.hurry = False
        """An operator asked to kill at once: escapees get SIGKILL without a grace period."""
        self.swept = 0
        """Sweeps run (for tests and benchmarks)."""

    # ------------------------------------------------------------------ bookkeeping

    def open_window(self, start: float) -> str:
        tag = f"{self.prefix}{next(self._tags)}"
        self.windows[tag] = Window(tag, start)
        return tag

    def exited(self, tag: str) -> None:
        """The task's main process and group have ended: sweep for what it left."""
        window = self.windows.get(tag)
        if window is not None:
            window.exited = True
        self.request()

    def request(self) -> None:
        if self.closing:
            return
        self._wanted.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="orphans")

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                self.sweep()
            except Exception:  # a sweep must never take the engine down
                log.exception("orphan sweep failed")
            await asyncio.sleep(self.every_s)

    # ------------------------------------------------------------------ the sweep

    def _owners(self, root: Proc) -> list[Window]:
        tag = environ_value(root.pid, TAG_VAR)
        if tag is not None and tag in self.windows:
            return [self.windows[tag]]
        if tag is not None and tag.startswith(self.prefix):
            return [_GONE]
        if not self.adopt:
            return []
        started = root.started_s
        return [w for w in self.windows.values() if w.covers(started)]

    def sweep(self) -> int:
        """One look at our roots; starts ending the ripe ones. Returns how many processes
        it condemned."""
        self.swept += 1
        # Ending escapees needs their subtrees (every process); otherwise (cgroup mode: the
        # cgroups end them) only our own children matter, the zombies among them to reap:
        # /proc/self/task/*/children, not a scan of every process (1.7 ms for 92 here).
        procs = None if self.kill else own_children()
        if procs is None:
            procs = scan()
        me = os.getpid()
        kids: dict[int, list[Proc]] = {}
        for proc in procs:
            kids.setdefault(proc.ppid, []).append(proc)
        roots = [p for p in kids.get(me, ()) if p.pid not in self.leaders]
        batch: list[Proc] = []
        busy: set[str] = {tag for tags in self._condemned.values() for tag in tags}
        needed: set[str] = set()
        for root in roots:
            key = (root.pid, root.start)
            if root.zombie:
                if key in self._killed or self._claims(root):
                    reap_same(root.pid, root.start)
                    self._killed.discard(key)
                continue
            if key in self._condemned:
                continue
            owners = self._owners(root)
            tags = frozenset(w.tag for w in owners)
            needed |= tags
            if not self.kill or not owners or not all(w.exited or self.closing for w in owners):
                continue
            busy |= tags
            for proc in _subtree(root, kids):
                pkey = (proc.pid, proc.start)
                if pkey not in self._condemned and not proc.zombie:
                    self._condemned[pkey] = tags
                    batch.append(proc)
        self._close_windows(busy, needed)
        self._killed = {k for k in self._killed if _exists(*k)}
        if batch:
            task = asyncio.get_running_loop().create_task(self._end(batch), name="escapees")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        return len(batch)

    def _claims(self, zombie: Proc) -> bool:
        if self.claims_zombie is not None and self.claims_zombie(zombie):
            return True
        return self.adopt and any(w.covers(zombie.started_s) for w in self.windows.values())

    def _close_windows(self, busy: set[str], needed: set[str]) -> None:
        """Close the windows of ended tasks with nothing left being ended; forget closed
        ones no live root falls in (all of a task's processes are in roots once it ended:
        a root that appears later descends from another task)."""
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        for window in self.windows.values():
            if window.exited and window.end is None and window.tag not in busy:
                window.end = now
        for tag in [t for t, w in self.windows.items()
                    if w.end is not None and t not in busy | needed]:  # fmt: skip
            del self.windows[tag]

    async def _end(self, batch: list[Proc]) -> None:
        """SIGTERM (and SIGCONT) the batch, wait up to the grace period, SIGKILL the rest."""
        for proc in batch:
            if signal_same(proc.pid, proc.start, signal.SIGTERM):
                signal_same(proc.pid, proc.start, signal.SIGCONT)
                self._killed.add((proc.pid, proc.start))
        log.info("ending %d process(es) left by ended tasks: %s", len(batch),
                 [p.pid for p in batch])  # fmt: skip
        deadline = time.monotonic() + self.grace_s
        delay = 0.005
        try:
            while alive := [p for p in batch if alive_same(p.pid, p.start)]:
                if time.monotonic() >= deadline or self.hurry:
                    for proc in alive:
                        signal_same(proc.pid, proc.start, signal.SIGKILL)
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
            for _ in range(200):  # SIGKILL is not instant
                if not any(alive_same(p.pid, p.start) for p in batch):
                    break
                await asyncio.sleep(0.01)
            for proc in batch:
                reap_same(proc.pid, proc.start)
        finally:
            for proc in batch:
                self._condemned.pop((proc.pid, proc.start), None)
            self.request()  # what they started while dying, and closing their windows

    def kill_now(self) -> None:
        """No more grace: SIGKILL what is being ended, and what is condemned from now on."""
        self.hurry = True
        for pid, start in list(self._condemned):
            signal_same(pid, start, signal.SIGKILL)

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Every task has ended: end whatever they left (bounded by the grace period plus a
        little) and stop sweeping."""
        self.closing = True
        for window in self.windows.values():
            window.exited = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        deadline = time.monotonic() + self.grace_s + 2.0
        while time.monotonic() < deadline:
            found = self.sweep()
            if self._batches:
                await asyncio.wait(set(self._batches), timeout=max(deadline - time.monotonic(), 0))
            elif not found:
                break
        self.sweep()  # reap the last zombies
        for task in list(self._batches):
            task.cancel()


def _exists(pid: int, start: int) -> bool:
    """Still there, alive or a zombie."""
    proc = read_proc(pid)
    return proc is not None and proc.start == start


def _subtree(root: Proc, kids: dict[int, list[Proc]]) -> list[Proc]:
    out, todo = [], [root]
    while todo:
        proc = todo.pop()
        out.append(proc)
        todo.extend(kids.get(proc.pid, ()))
    return out
