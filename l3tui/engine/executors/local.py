"""Local executor: each task is one process in its own session and process group.

Spawned with `os.posix_spawn` (setsid) and watched with a pidfd on the event loop: no
thread per child (Python 3.11's default child watcher starts one). stdout and stderr share
one pipe so the log keeps their order. Pause is SIGSTOP to the task, resume SIGCONT;
terminate is SIGTERM to the task, a grace period, then SIGKILL. When the main process
exits, whatever it left behind is terminated the same way, so nothing outlives its task.
"The task" is its cgroup where l3tui can have one per task, else its process group plus
the escapees containment.py finds (see there for what each mode guarantees).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from l3tui.engine.executors.base import (
    CommandJob,
    OnLines,
    OnMetric,
    Placement,
    ProcessResult,
    SpawnError,
)
from l3tui.engine.executors.containment import Containment, Enclosure
from l3tui.engine.executors.output import FdWatch, OutputCapture, open_private_log
from l3tui.engine.executors.procs import (
    above_own_peak,
    group_has_live_member,
    read_proc,
    reap_orphans,
)
from l3tui.engine.executors.starter import wrap

F_SETPIPE_SZ = 1031
READ_BYTES = 256 * 1024
"""One read of a task's output per loop turn. The console shares the loop: a 1 MiB read (split,
written, published) made every key wait behind it, and `?` took 0.7-1.5 s during a 1 GiB
flood on a busy machine; at 256 KiB 0.2-0.5 s (docs/reliability.md, Task output)."""
EOF_WAIT_AFTER_EXIT = 2.0
_RESET_SIGNALS = tuple(
    s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None), signal.SIGINT,
                signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)
    if s is not None
)  # fmt: skip


class LocalProcess:
    """A running task process; owned by the engine until `wait()` returns."""

    def __init__(
        self,
        job: CommandJob,
        log_path: str | Path | None,
        log_cap: int,
        on_lines: OnLines,
        on_metric: OnMetric,
        grace_s: float,
        enclosure: Enclosure,
        watch: FdWatch,
    ) -> None:
        self.job = job
        self._watch = watch
        self.grace_s = grace_s
        self.enclosure = enclosure
        self.cgroup = enclosure.cgroup
        self._reaped = False
        self.rusage: resource.struct_rusage | None = None
        self.done_callbacks: list[Callable[[LocalProcess], None]] = []
        """Called once `wait()` has finished."""
        self._loop = asyncio.get_running_loop()
        opener = (lambda: open_private_log(log_path)) if log_path is not None else None
        self.capture = OutputCapture(opener, log_cap, on_lines, on_metric, job.mask)
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        self.paused = False
        self._terminating: asyncio.Task[None] | None = None
        self._pidfd: int | None = None
        self._read_fd: int | None = None
        executable, argv = wrap(job, enclosure.join)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        # The kernel stamps the child with the boot clock at clone, in 10 ms ticks: this
        # reading is within one tick of it (reading /proc/PID/stat instead would wait for
        # the child's exec to finish, ~0.5 ms on the loop).
        spawned_at = time.clock_gettime(time.CLOCK_BOOTTIME)
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, F_SETPIPE_SZ, 1024 * 1024)
        try:
            self.pid = os.posix_spawn(
                executable,
                argv,
                enclosure.env(dict(job.env)),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_fd, 1),
                    (os.POSIX_SPAWN_DUP2, write_fd, 2),
                ],
                setsid=True,
                setsigdef=_RESET_SIGNALS,
                setsigmask=(),
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            enclosure.ended()
            raise SpawnError(job.shown(f"cannot start {job.argv[0]}: {exc.strerror}")) from None
        os.close(write_fd)
        enclosure.spawned(self.pid)
        self.pgid = self.pid
        self.started_mono = time.monotonic()
        self.proc_start = spawned_at
        os.set_blocking(read_fd, False)
        self._read_fd = read_fd
        watch.add(read_fd, self._on_readable)
        self._watch_exit()

    # ------------------------------------------------------------------ watching

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self._pidfd = None
        if self._pidfd is not None:
            self._watch.add(self._pidfd, self._on_pidfd)
        else:  # old kernel: one waiting thread for this child
            threading.Thread(target=self._wait_thread, daemon=True).start()

    def _on_pidfd(self) -> None:
        # wait4, not waitpid: the kernel's CPU time and peak RSS of the task's process and
        # the descendants it waited for, exact even for a task shorter than a sample.
        try:
            pid, status, self.rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        assert self._pidfd is not None
        self._watch.remove(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._set_exited(status)

    def _wait_thread(self) -> None:
        try:
            _, status, self.rusage = os.wait4(self.pid, 0)
        except ChildProcessError:
            status = 255 << 8
        self._loop.call_soon_threadsafe(self._set_exited, status)

    def _set_exited(self, status: int) -> None:
        self._reaped = True
        self.enclosure.reaped(self.pid)
        if not self._exited.done():
            self._exited.set_result(status)

    def _on_readable(self) -> None:
        fd = self._read_fd
        if fd is None:
            return
        try:
            chunk = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.capture.feed(chunk)
            return
        self._close_reader()

    def _close_reader(self) -> None:
        fd = self._read_fd
        if fd is None:
            return
        self._read_fd = None
        self._watch.remove(fd)
        os.close(fd)
        if not self._eof.done():
            self._eof.set_result(None)

    # ------------------------------------------------------------------ control

    @property
    def running(self) -> bool:
        return not self._exited.done()

    def _signal_group(self, sig: int) -> bool:
        """`sig` to the whole task: its cgroup, or its process group."""
        if self.cgroup is not None:
            sent = self.cgroup.signal(sig)
            if self.pid not in sent and self.running and self._signal_leader(sig):
                # Not in its cgroup yet (the wrapper joins it first thing): the leader is
                # then the whole task, and its pidfd reaches exactly it.
                sent.add(self.pid)
            return bool(sent)
        if not self._group_is_ours():
            return False
        try:
            os.killpg(self.pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _signal_leader(self, sig: int) -> bool:
        if self._pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
            return True
        except OSError:
            return False

    def pause(self) -> bool:
        if self.paused or not self.running:
            return False
        self.paused = self._signal_group(signal.SIGSTOP)
        return self.paused

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.paused = False
        return self._signal_group(signal.SIGCONT)

    def terminate(self) -> asyncio.Task[None]:
        """SIGTERM the group, wait the grace period, SIGKILL what is left. Idempotent."""
        if self._terminating is None:
            self._terminating = self._loop.create_task(self._terminate_group())
        return self._terminating

    def _group_is_ours(self) -> bool:
        """Once our leader is reaped, a process holding its pid proves the pid was reused,
        so the group by that id is not ours (while our group had members, the kernel could
        not have handed the pid out)."""
        return not self._reaped or read_proc(self.pgid) is None

    def group_alive(self) -> bool:
        """True while any live (non-zombie) process is in the task (cgroup or group)."""
        if self.cgroup is not None:
            return self.running or self.cgroup.populated()
        if not self._group_is_ours():
            return False
        try:
            os.killpg(self.pgid, 0)  # cheap: the usual answer is "no such group"
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # Members remain; some may be orphaned zombies re-parented to us: reap, then look.
        reap_orphans({self.pgid}, exclude={self.pid} if self.running else set())
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return group_has_live_member(self.pgid)

    async def _terminate_group(self) -> None:
        if not self.group_alive():
            return
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.paused = False
        deadline = time.monotonic() + self.grace_s
        delay = 0.005
        while self.group_alive():
            if time.monotonic() >= deadline:
                if self.cgroup is not None:
                    self.cgroup.kill()
                    self._signal_leader(signal.SIGKILL)  # in case it never joined
                else:
                    self._signal_group(signal.SIGKILL)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        for _ in range(100):  # SIGKILL is not instant; wait (bounded) until it took
            if not self.group_alive():
                break
            await asyncio.sleep(0.01)

    def kill_now(self) -> None:
        """SIGKILL the whole task at once (no grace): an operator's second Ctrl-C."""
        if self.cgroup is not None:
            self.cgroup.kill()
            self._signal_leader(signal.SIGKILL)
        else:
            self._signal_group(signal.SIGKILL)

    async def wait(self) -> ProcessResult:
        """Wait for the process, clean up its group, drain its output."""
        status = await self._exited
        try:
            # Leftovers (systemd's KillMode=control-group); an empty group, the usual case,
            # costs no Task.
            if self._terminating is not None or self.group_alive():
                await self.terminate()
        finally:
            self.enclosure.ended()
        if not self._eof.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._eof), EOF_WAIT_AFTER_EXIT)
            except TimeoutError:
                pass  # an escaped process (setsid) still holds the pipe: stop reading
            self._close_reader()
        self.capture.close()
        for callback in self.done_callbacks:
            callback(self)
        usage = self.rusage
        cpu_s = usage.ru_utime + usage.ru_stime if usage is not None else None
        # The child shares (or copies) l3tui's memory until its exec, and Linux carries that
        # memory's high-water mark into the child's ru_maxrss: a figure not above l3tui's
        # own peak may be l3tui's, so it says nothing about the task (the sampler's does).
        max_rss = usage.ru_maxrss * 1024 if usage is not None and above_own_peak(usage) else None
        signalled = os.WIFSIGNALED(status)
        return ProcessResult(
            None if signalled else os.waitstatus_to_exitcode(status),
            os.WTERMSIG(status) if signalled else None,
            self.capture.total_bytes,
            self.capture.dropped_bytes,
            self.capture.last_line,
            cpu_s,
            max_rss,
        )


class LocalExecutor:
    """Starts `CommandJob`s as local process groups (implements `base.Executor`).

    `adopt_orphans`: this process is l3tui alone (the CLI), so every process re-parented to
    it descends from a task; without cgroups, a task's escapee that cleared its environment
    is then found by when it started. Leave it off when embedding the engine in a program
    that starts processes of its own."""

    def __init__(self, log_cap_bytes: int, grace_s: float, *, adopt_orphans: bool = False) -> None:
        self.log_cap_bytes = log_cap_bytes
        self.grace_s = grace_s
        self.containment = Containment(grace_s, adopt_orphans=adopt_orphans)
        self._live: set[LocalProcess] = set()
        self._watch: FdWatch | None = None

    @property
    def mode(self) -> str:
        """`cgroup`, `subreaper` or `process group` (see containment.py)."""
        self.containment.describe()
        return self.containment.mode

    def start(
        self, job: CommandJob, log_path: str | Path | None, on_lines: OnLines, on_metric: OnMetric,
        placement: Placement | None = None,
    ) -> LocalProcess:
        spawned_at = time.clock_gettime(time.CLOCK_BOOTTIME)
        try:
            enclosure = self.containment.enclose(spawned_at)
        except OSError as exc:
            raise SpawnError(f"cannot create the task's cgroup: {exc.strerror}") from None
        try:
            proc = LocalProcess(job, log_path, self.log_cap_bytes, on_lines, on_metric,
                                self.grace_s, enclosure, self._watching())  # fmt: skip
        except BaseException:
            enclosure.ended()  # no task: its cgroup and time window go too
            raise
        self._live.add(proc)
        proc.done_callbacks.append(self._live.discard)
        return proc

    def _watching(self) -> FdWatch:
        loop = asyncio.get_running_loop()
        if self._watch is None or self._watch.loop is not loop:  # first task, or a new loop
            if self._watch is not None:
                self._watch.close()  # the old loop's (its epoll fd, unless tasks remain in it)
            self._watch = FdWatch(loop)
        return self._watch

    def kill_all(self) -> None:
        """SIGKILL every task still running, and every escapee being ended, at once."""
        for proc in self._live:
            proc.kill_now()
        self.containment.kill_now()

    async def close(self) -> None:
        """End every task still running and whatever tasks left; remove our cgroups."""
        running = [proc.terminate() for proc in self._live]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for proc in list(self._live):
            proc.enclosure.ended()
        await self.containment.close()
        if self._watch is not None:
            self._watch.close()
