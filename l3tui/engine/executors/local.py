"""Local executor: each task is one process in its own session and process group.

Spawned with `os.posix_spawn` (setsid) and watched with a pidfd on the event loop: no
thread per child (Python 3.11's default child watcher starts one). stdout and stderr share
one pipe so the log keeps their order. Pause is SIGSTOP to the group, resume SIGCONT;
terminate is SIGTERM to the group, a grace period, then SIGKILL. When the main process
exits, whatever it left behind in its group is terminated the same way, so no grandchild
outlives its task. l3tui makes itself a child subreaper so those orphans are reaped here
even where PID 1 does not reap.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from l3tui.config.schema import RLimits
from l3tui.engine.executors.base import CommandJob, OnLines, OnMetric, ProcessResult, SpawnError
from l3tui.engine.executors.output import OutputCapture
from l3tui.engine.executors.procs import become_subreaper, group_has_live_member, reap_orphans

F_SETPIPE_SZ = 1031
READ_BYTES = 256 * 1024
"""One read of a task's output per loop turn. The console shares the loop: a 1 MiB read (split,
written, published) made every key wait behind it, and `?` took 0.7-1.5 s during a 1 GiB
flood on a busy machine; at 256 KiB 0.2-0.5 s (docs/reliability.d/logs.md)."""
EOF_WAIT_AFTER_EXIT = 2.0
_RESET_SIGNALS = tuple(
    s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None), signal.SIGINT,
                signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)
    if s is not None
)  # fmt: skip


_nproc_flag: str | None = None


def _ulimit_nproc_flag() -> str:
    """dash spells the process limit `-p`, bash `-u`."""
    global _nproc_flag
    if _nproc_flag is None:
        probe = subprocess.run(["/bin/sh", "-c", "ulimit -p 100000"], capture_output=True,
                               check=False)  # fmt: skip
        _nproc_flag = "-p" if probe.returncode == 0 else "-u"
    return _nproc_flag


def _wrap(job: CommandJob) -> tuple[str, list[str]]:
    """The executable and argv to spawn: direct, or via /bin/sh to chdir and set rlimits."""
    if job.cwd is None and job.rlimits is None:
        return job.executable, list(job.argv)
    limits: list[str] = []
    r: RLimits | None = job.rlimits
    if r is not None:
        if r.address_space_mb:
            limits.append(f"ulimit -v {r.address_space_mb * 1024}")
        if r.cpu_seconds:
            limits.append(f"ulimit -t {r.cpu_seconds}")
        if r.open_files:
            limits.append(f"ulimit -n {r.open_files}")
        if r.processes:
            limits.append(f"ulimit {_ulimit_nproc_flag()} {r.processes}")
    script = 'cd -- "$1" || exit 126; shift; ' + "".join(f"{cmd} || exit 126; " for cmd in limits)
    script += 'exec "$@"'
    argv = ["/bin/sh", "-c", script, "l3tui-task", job.cwd or ".", job.executable, *job.argv[1:]]
    return "/bin/sh", argv


class LocalProcess:
    """A running task process; owned by the engine until `wait()` returns."""

    def __init__(
        self,
        job: CommandJob,
        log_path: Path | None,
        log_cap: int,
        on_lines: OnLines,
        on_metric: OnMetric,
        grace_s: float,
    ) -> None:
        self.job = job
        self.grace_s = grace_s
        self._loop = asyncio.get_running_loop()
        opener = (lambda: open(log_path, "ab")) if log_path is not None else None  # noqa: SIM115
        self.capture = OutputCapture(opener, log_cap, on_lines, on_metric)
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        self.paused = False
        self._terminating: asyncio.Task[None] | None = None
        self._pidfd: int | None = None
        self._read_fd: int | None = None
        executable, argv = _wrap(job)
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
                job.env,
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
            raise SpawnError(f"cannot start {job.argv[0]}: {exc.strerror}") from None
        os.close(write_fd)
        self.pgid = self.pid
        self.started_mono = time.monotonic()
        self.proc_start = spawned_at
        os.set_blocking(read_fd, False)
        self._read_fd = read_fd
        self._loop.add_reader(read_fd, self._on_readable)
        self._watch_exit()

    # ------------------------------------------------------------------ watching

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self._pidfd = None
        if self._pidfd is not None:
            self._loop.add_reader(self._pidfd, self._on_pidfd)
        else:  # old kernel: one waiting thread for this child
            threading.Thread(target=self._wait_thread, daemon=True).start()

    def _on_pidfd(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._set_exited(status)

    def _wait_thread(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 255 << 8
        self._loop.call_soon_threadsafe(self._set_exited, status)

    def _set_exited(self, status: int) -> None:
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
        self._loop.remove_reader(fd)
        os.close(fd)
        if not self._eof.done():
            self._eof.set_result(None)

    # ------------------------------------------------------------------ control

    @property
    def running(self) -> bool:
        return not self._exited.done()

    def _signal_group(self, sig: int) -> bool:
        try:
            os.killpg(self.pgid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
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

    def group_alive(self) -> bool:
        """True while any live (non-zombie) process is in the task's group."""
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
                self._signal_group(signal.SIGKILL)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        for _ in range(100):  # SIGKILL is not instant; wait (bounded) until it took
            if not self.group_alive():
                break
            await asyncio.sleep(0.01)

    async def wait(self) -> ProcessResult:
        """Wait for the process, clean up its group, drain its output."""
        status = await self._exited
        await self.terminate()  # leftovers in the group: systemd's KillMode=control-group
        if not self._eof.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._eof), EOF_WAIT_AFTER_EXIT)
            except TimeoutError:
                pass  # an escaped process (setsid) still holds the pipe: stop reading
            self._close_reader()
        self.capture.close()
        if os.WIFSIGNALED(status):
            return ProcessResult(
                None,
                os.WTERMSIG(status),
                self.capture.total_bytes,
                self.capture.dropped_bytes,
                self.capture.last_line,
            )
        return ProcessResult(
            os.waitstatus_to_exitcode(status),
            None,
            self.capture.total_bytes,
            self.capture.dropped_bytes,
            self.capture.last_line,
        )


class LocalExecutor:
    """Starts `CommandJob`s as local process groups (implements `base.Executor`)."""

    def __init__(self, log_cap_bytes: int, grace_s: float) -> None:
        self.log_cap_bytes = log_cap_bytes
        self.grace_s = grace_s
        self.subreaper = become_subreaper()

    def start(
        self, job: CommandJob, log_path: Path | None, on_lines: OnLines, on_metric: OnMetric
    ) -> LocalProcess:
        return LocalProcess(job, log_path, self.log_cap_bytes, on_lines, on_metric, self.grace_s)
