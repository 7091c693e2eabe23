"""Task cgroups (cgroup v2): when l3tui's own cgroup is delegated to it, every task runs in a
child cgroup of its own, so everything the task starts stays in it whatever it does
(`setsid`, `env -i`, double forks), and ending the task ends all of it (`cgroup.kill`).

Layout: `<l3tui's cgroup>/l3tui-<pid>-<start ticks>-<n>/<task n>`; no controller is enabled,
so the cgroups only group processes (the "no internal processes" rule does not apply). A
task joins its cgroup before its command runs: the /bin/sh wrapper writes its own pid into
`cgroup.procs`, then execs the command (Python cannot clone into a cgroup directly).

Used when `L3TUI_CONTAINMENT` is `auto` (the default) and our cgroup is writable and either
the root of our cgroup namespace (a container or VM) or marked delegated by systemd
(`Delegate=yes`), or when it is `cgroup` and our cgroup is writable. Everything here only
touches cgroups this l3tui created and processes inside them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
from pathlib import Path

from l3tui.engine.executors.procs import Proc, read_file, read_proc, reap_same, signal_same
from l3tui.engine.executors.starter import run_probe

CHOICE_VAR = "L3TUI_CONTAINMENT"
CHOICES = ("auto", "cgroup", "subreaper")
KEEP_FREE = 16
"""Empty task cgroups kept for reuse, at most (tasks running at once reuse as many)."""
_serial = itertools.count(1)
_FILES = ("cgroup.events", "cgroup.procs", "cgroup.type", "cgroup.stat",
          "cgroup.max.descendants", "cgroup.max.depth")  # fmt: skip
"""What `TaskCgroup` reads after each task: by index (`_read`)."""
_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
_KEEP_KNOBS = _NOFILE == resource.RLIM_INFINITY or _NOFILE >= 8192
"""Keep the four knob files open too (six fds per cgroup, two otherwise): not where the
open-file limit is the common 1024, which would then bound the tasks running at once."""


class CgroupUnavailable(Exception):
    """Why task cgroups cannot be used here (said in one line)."""


def own_cgroup() -> tuple[Path, str]:
    """(directory, path inside the hierarchy) of this process's cgroup v2."""
    text = (Path("/proc/self/cgroup").read_text() if os.path.exists("/proc/self/cgroup")
            else "")  # fmt: skip
    rel = next((line[3:] for line in text.splitlines() if line.startswith("0::")), None)
    if rel is None:
        raise CgroupUnavailable("no cgroup v2 hierarchy")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] != "cgroup2":
            continue
        fields = left.split()
        root, mount = fields[3], fields[4]
        if root == "/" or rel == root or rel.startswith(root.rstrip("/") + "/"):
            inside = rel[len(root.rstrip("/")) :] if root != "/" else rel
            return Path(mount + inside.rstrip("/") if inside != "/" else mount), rel
    raise CgroupUnavailable("cgroup2 is not mounted")


def _delegated(path: Path, rel: str) -> bool:
    if rel == "/":
        return True  # our namespace's root: a container or VM of our own
    for attr in ("trusted.delegate", "user.delegate"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, attr) == b"1":
                return True
    return False


class TaskCgroup:
    """One task's cgroup: signal what is in it, kill all of it, remove it."""

    def __init__(self, path: Path, rel: str) -> None:
        self.path = path
        self.rel = rel
        """Its path inside the hierarchy, as /proc/PID/cgroup names it."""
        self.procs_file = f"{path}/cgroup.procs"
        self._fds: dict[int, int] = {}
        """Index in `_FILES` -> its file, open for the cgroup's life: checked after every
        task, each by one pread (the open/read/close of a path is three syscalls; the six
        reads of `empty()` cost 13.6 us that way, 4 us by pread). The knobs (2 and up) only
        where the open-file limit leaves room for four more fds per cgroup (`_KEEP_KNOBS`)."""
        self._signalled: dict[int, int] = {}
        """pid -> start of every process we signalled: reaped when it ends (they may be
        escapees re-parented to us, which nobody else waits for)."""

    def members(self) -> list[Proc]:
        try:
            pids = Path(self.procs_file).read_text().split()
        except OSError:
            return []
        return [p for pid in pids if (p := read_proc(int(pid))) is not None]

    def _read(self, which: int) -> bytes | None:
        try:
            fd = self._fds.get(which)
            if fd is None:
                path = f"{self.path}/{_FILES[which]}"
                if which >= 2 and not _KEEP_KNOBS:
                    return read_file(path)
                fd = self._fds[which] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(fd, 4096, 0)
        except OSError:
            return None

    def populated(self) -> bool:
        """True while a live process is in the cgroup (zombies do not count)."""
        return b"populated 1" in (self._read(0) or b"")

    def empty(self) -> bool:
        """Nothing in it, not even a zombie, nothing we signalled left to reap, and as it was
        made: the knobs a task may turn in its own cgroup (freeze, type, limits on cgroups
        below, cgroups below) are untouched, so that the next task finds a new cgroup."""
        for pid, start in self._signalled.items():
            reap_same(pid, start)
        self._signalled.clear()
        if self._read(1) != b"":
            return False
        events = self._read(0) or b""
        if b"populated 0" not in events or b"frozen 0" not in events:
            return False
        return (self._read(2) == b"domain\n"
                and (self._read(3) or b"").startswith(b"nr_descendants 0\n")
                and self._read(4) == b"max\n" and self._read(5) == b"max\n")  # fmt: skip

    def signal(self, sig: int) -> set[int]:
        """`sig` to every process in the cgroup, each checked to be still in it (by pidfd,
        so a pid reused in between is never signalled). The pids signalled."""
        sent = set()
        for proc in self.members():
            if self._inside(proc.pid) and signal_same(proc.pid, proc.start, sig):
                self._signalled[proc.pid] = proc.start
                sent.add(proc.pid)
        return sent

    def _inside(self, pid: int) -> bool:
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        return f"0::{self.rel}" in text.splitlines()

    def kill(self) -> None:
        """SIGKILL everything in the cgroup at once (the kernel's `cgroup.kill`)."""
        for proc in self.members():
            self._signalled.setdefault(proc.pid, proc.start)
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1")

    def remove(self) -> bool:
        """Reap the zombies we made, then delete the (empty) cgroup; False if it is not."""
        for pid, start in self._signalled.items():
            reap_same(pid, start)
        self._signalled.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        try:
            self.path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False


class CgroupHome:
    """This l3tui's cgroup directory, holding one cgroup per running task."""

    def __init__(self, path: Path, rel: str) -> None:
        self.path = path
        self.rel = rel
        self._tasks = itertools.count(1)
        self._left: list[TaskCgroup] = []
        """Task cgroups that could not be removed yet (still populated): retried at close."""
        self._free: list[TaskCgroup] = []
        """Empty task cgroups, ready for the next tasks."""

    @classmethod
    def open(cls, choice: str) -> CgroupHome:
        """Create our directory under l3tui's cgroup and prove a task can join a child of it;
        raises CgroupUnavailable naming why not."""
        if choice == "subreaper":
            raise CgroupUnavailable(f"{CHOICE_VAR}=subreaper")
        try:
            base, rel = own_cgroup()
        except OSError as exc:
            raise CgroupUnavailable(f"cannot read our cgroup: {exc}") from None
        if not (os.access(base, os.W_OK) and os.access(base / "cgroup.procs", os.W_OK)):
            raise CgroupUnavailable(f"{base} is not writable by us")
        if choice == "auto" and not _delegated(base, rel):
            raise CgroupUnavailable(f"{base} is not delegated to us (systemd Delegate=yes)")
        _remove_stale(base)
        me = read_proc(os.getpid())
        name = f"l3tui-{os.getpid()}-{me.start if me else 0}-{next(_serial)}"
        path = base / name
        try:
            path.mkdir()
        except OSError as exc:
            raise CgroupUnavailable(f"cannot create {path}: {exc.strerror}") from None
        home = cls(path, rel.rstrip("/") + "/" + name)
        try:
            home._probe()
        except CgroupUnavailable:
            with contextlib.suppress(OSError):
                path.rmdir()
            raise
        return home

    def _probe(self) -> None:
        probe = self.path / "probe"
        try:
            probe.mkdir()
            if not (probe / "cgroup.kill").exists():
                raise CgroupUnavailable("this kernel has no cgroup.kill (Linux 5.14+)")
            status, said = run_probe(str(probe / "cgroup.procs"))
            if status != 0:
                raise CgroupUnavailable(f"a process cannot join {probe}: "
                                        + (said or f"exit {status}"))  # fmt: skip
        except OSError as exc:
            raise CgroupUnavailable(f"cannot use {self.path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()

    def new_task(self) -> TaskCgroup:
        """An empty cgroup for a task: one an ended task left empty, else a new one."""
        if self._free:
            return self._free.pop()
        name = f"task-{next(self._tasks)}"
        os.mkdir(f"{self.path}/{name}")
        return TaskCgroup(self.path / name, f"{self.rel}/{name}")

    def release(self, cgroup: TaskCgroup) -> None:
        """The task of `cgroup` has ended: the cgroup is kept for the next task if it is
        empty (nothing listed, not even a zombie: mkdir, rmdir and a first join cost a task
        about 0.2 ms here), removed if enough are kept, retried at close if it is not empty.
        Nothing can enter an empty cgroup but by a write to its cgroup.procs, which only our
        tasks' wrappers make (before their command runs)."""
        if len(self._free) < KEEP_FREE and cgroup.empty():
            self._free.append(cgroup)
            return
        if not cgroup.remove():
            self._left.append(cgroup)

    def close(self) -> None:
        """Kill what is left in task cgroups (nothing, unless removal failed) and remove
        them and our directory."""
        for cgroup in self._left:
            cgroup.kill()
        for cgroup in self._left + self._free:
            cgroup.remove()
        self._left.clear()
        self._free.clear()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _remove_stale(base: Path) -> None:
    """Empty directories of l3tui instances that died without closing: removed. Populated
    ones are left alone (recovery ends their processes; they are removed on a later start)."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            parts = entry.name.split("-")
            if len(parts) != 4 or parts[0] != "l3tui" or not parts[1].isdigit():
                continue
            now = read_proc(int(parts[1]))
            if now is not None and str(now.start) == parts[2]:
                continue  # that l3tui still runs
            for child in entry.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                entry.rmdir()


def choice() -> tuple[str, str]:
    """`L3TUI_CONTAINMENT` (auto, cgroup or subreaper), and a note when its value was none
    of those (then auto)."""
    raw = os.environ.get(CHOICE_VAR, "auto")
    value = raw.strip().lower()
    if value in CHOICES:
        return value, ""
    return "auto", f"{CHOICE_VAR}={raw!r} is not one of {', '.join(CHOICES)}: using auto"

