"""Which processes belong to a task, so that none outlives it. The executor asks for an
`Enclosure` before each spawn; the mode is picked once per executor:

- `cgroup`: each task in a cgroup of its own (cgroups.py). Complete: whatever a task
  starts stays in its cgroup (`setsid`, `env -i`, double forks) unless it moves itself out
  on purpose, and ending the task ends all of it.
- `subreaper`: l3tui is a child subreaper and tags each task's environment; processes that
  left the task's group are found among the orphans re-parented to l3tui (orphans.py).
  Complete for everything that keeps its environment; a process that cleared it (`env -i`)
  and left the group is found by when it started, only when l3tui is the whole program.
- `process group`: neither is available (no prctl): only the task's process group.

In every mode the task's process group is ended as before (SIGTERM, grace, SIGKILL).
"""

from __future__ import annotations

import logging
from pathlib import Path

from l3tui.engine.executors.cgroups import CgroupHome, CgroupUnavailable, TaskCgroup, choice
from l3tui.engine.executors.orphans import TAG_VAR, OrphanTracker
from l3tui.engine.executors.procs import Proc, become_subreaper

log = logging.getLogger(__name__)

SWEEP_EVERY_S = {"cgroup": 1.0, "subreaper": 0.1, "process group": 1.0}
"""Least time between two sweeps for escapees (subreaper) or zombies to reap (cgroup)."""


class Enclosure:
    """One task's share of the containment: its tag, its cgroup (cgroup mode)."""

    def __init__(self, owner: Containment, tag: str, cgroup: TaskCgroup | None) -> None:
        self.owner = owner
        self.tag = tag
        self.cgroup = cgroup
        self.join: str | None = cgroup.procs_file if cgroup is not None else None
        """The `cgroup.procs` file the task's wrapper writes its pid to before exec."""
        self._ended = False

    def env(self, base: dict[str, str]) -> dict[str, str]:
        base[TAG_VAR] = self.tag
        return base

    def spawned(self, pid: int) -> None:
        self.owner.orphans.leaders.add(pid)

    def reaped(self, pid: int) -> None:
        self.owner.orphans.leaders.discard(pid)

    def ended(self) -> None:
        """The task and its group are gone: give its cgroup back, sweep for what it left."""
        if self._ended:
            return
        self._ended = True
        if self.cgroup is not None and self.owner.home is not None:
            self.owner.home.release(self.cgroup)
        self.owner.orphans.exited(self.tag)


class Containment:
    """The mode in use, and what it needs for the life of the executor. Nothing is created
    until the first task (an engine that never runs one leaves no cgroup behind)."""

    def __init__(self, grace_s: float, *, adopt_orphans: bool) -> None:
        self.grace_s = grace_s
        self.adopt_orphans = adopt_orphans
        self.home: CgroupHome | None = None
        self._orphans: OrphanTracker | None = None
        self.mode = ""
        self.detail = ""

    @property
    def orphans(self) -> OrphanTracker:
        if self._orphans is None:
            self._orphans = self._setup()
        return self._orphans

    def _setup(self) -> OrphanTracker:
        subreaper = become_subreaper()
        wanted, note = choice()
        try:
            self.home = CgroupHome.open(wanted)
            self.mode, self.detail = "cgroup", str(self.home.path)
        except (CgroupUnavailable, OSError) as exc:  # OSError: an unexpected /proc, /sys
            self.mode = "subreaper" if subreaper else "process group"
            self.detail = f"no task cgroups: {exc}"
        if note:
            self.detail += f"; {note}"
            log.warning("%s", note)
        log.info("process containment: %s (%s)", self.mode, self.detail)
        return OrphanTracker(
            self.grace_s,
            adopt=self.adopt_orphans and subreaper,
            kill=self.mode == "subreaper",
            every_s=SWEEP_EVERY_S[self.mode],
            claims_zombie=self._in_our_cgroups if self.home is not None else None,
        )

    def describe(self) -> str:
        """The mode and why (`cgroup (/sys/fs/cgroup/...)`, `subreaper (no task cgroups:
        ...)`): decided on first use."""
        self.orphans  # noqa: B018 - decides the mode
        return f"{self.mode} ({self.detail})"

    def enclose(self, start: float) -> Enclosure:
        """A new task's enclosure; OSError if its cgroup cannot be created."""
        tag = self.orphans.open_window(start)
        try:
            cgroup = self.home.new_task() if self.home is not None else None
        except OSError:
            self.orphans.exited(tag)
            raise
        return Enclosure(self, tag, cgroup)

    def _in_our_cgroups(self, proc: Proc) -> bool:
        assert self.home is not None
        try:
            text = Path(f"/proc/{proc.pid}/cgroup").read_text()
        except OSError:
            return False
        return any(line.startswith(f"0::{self.home.rel}/") for line in text.splitlines())

    def kill_now(self) -> None:
        """Escapees being ended get SIGKILL now rather than after the grace period."""
        if self._orphans is not None:
            self._orphans.kill_now()

    async def close(self) -> None:
        """Every task has ended: end what they left, remove our cgroups. Never raises: the
        store still has to be closed after this."""
        try:
            if self._orphans is not None:
                await self._orphans.close()
            if self.home is not None:
                self.home.close()
        except Exception:
            log.exception("closing the process containment failed")
