"""What the Dask executor runs on a worker: one attempt of a command task, as a process in
a session and process group of its own, with the same semantics as a local run.

- Output (stdout and stderr, one pipe) goes back to l3tui in chunks while the task runs, as
  events of the worker's structured log (`Worker.log_event`) on a topic only this l3tui
  client subscribes to. They travel on the worker's batched stream to the scheduler and on
  the scheduler's batched stream to the client: no request per chunk, and they reach the
  client before the task's result, which takes the same two streams. Past the log cap only
  `L3METRIC` lines and the last `TAIL_BYTES` go back (the byte and line counts too), so a
  flood never crosses the network or fills the scheduler (it keeps the last 1,000 events of
  a topic).
- The process tree (the group and whatever left it) is sampled once a second: CPU % and RSS
  go back as they are measured, and as peaks with the result.
- It is ended (SIGTERM and SIGCONT to the group and the tree, the grace period, SIGKILL)
  when l3tui sets the attempt's cancellation `distributed.Event` (cancel, timeout), when
  l3tui let go of the attempt (its key is cancelled on this worker: the client went away),
  or when the scheduler cannot be reached for `LOST_AFTER_S` (the attempt is lost anyway:
  l3tui retries it). A `Future.cancel()` alone would not stop it.
- If the worker dies (SIGKILL, out of memory), a small reaper process it started (one per
  worker) sees its stdin close and ends every group still registered with it: SIGTERM,
  the grace period, SIGKILL. Processes that left their group (setsid) are ended only by the
  runner, which needs the worker alive.
- `signal_group` (pause: SIGSTOP, resume: SIGCONT) is run by the client through
  `Client.run` on the worker that holds the task, and checks the leader's start time first.

Self-contained (the standard library, psutil and distributed): the executor ships this
module to the workers by value, so a worker needs dask and psutil, not l3tui. Never import
l3tui here.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

import psutil

CHUNK_BYTES = 32 * 1024
"""At most this much output per event (the scheduler keeps 1,000 events of a topic)."""
FLUSH_S = 0.1
TAIL_BYTES = 32 * 1024
SAMPLE_S = 1.0
LOST_AFTER_S = 10.0
"""The scheduler unreachable this long: the attempt is lost, its process tree ended."""
_RESET = (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP,
          signal.SIGCHLD, signal.SIGXFSZ)  # fmt: skip
_REAPER = r"""
import os, signal, sys, time
groups, grace = set(), float(sys.argv[1])
for line in sys.stdin:  # until the worker, which holds the other end, is gone
    op, _, pgid = line.strip().partition(" ")
    (groups.add if op == "+" else groups.discard)(int(pgid))
def send(sig, pgid):
    try:
        os.killpg(pgid, sig)
        return True
    except OSError:
        return False
for pgid in groups:
    send(signal.SIGTERM, pgid), send(signal.SIGCONT, pgid)
deadline = time.monotonic() + grace
while time.monotonic() < deadline and any(send(0, g) for g in groups):
    time.sleep(0.05)
for pgid in groups:
    send(signal.SIGKILL, pgid)
"""
_reaper_lock = threading.Lock()


def _reaper(worker: Any, grace: float) -> Any:
    """This worker's reaper (started on first use): ends the groups of its tasks still
    running when the worker dies. Kept on the worker object, which outlives this module's
    copies (the module arrives by value with each task)."""
    with _reaper_lock:
        proc = getattr(worker, "_l3tui_reaper", None)
        if proc is None or proc.poll() is not None:
            proc = subprocess.Popen([sys.executable, "-c", _REAPER, str(grace)],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            worker._l3tui_reaper = proc
        return proc


def _tell(reaper: Any, line: str) -> None:
    with _reaper_lock:
        try:
            reaper.stdin.write(line.encode())
            reaper.stdin.flush()
        except (OSError, ValueError):
            pass  # the reaper died: the runner still ends its own tree


class _Flags:
    """What the watcher thread and the key check found (read by the main loop)."""

    def __init__(self) -> None:
        self.cancel = False
        self.lost = ""
        self.done = threading.Event()


def _watch_cancel(name: str, flags: _Flags) -> None:
    """Wait on the attempt's Event (long polls on the scheduler); note failures to reach it."""
    from distributed import Event

    event = Event(name)
    failing_since: float | None = None
    while not flags.done.is_set():
        try:
            if event.wait(timeout=1.0):
                flags.cancel = True
                return
            failing_since = None
        except Exception as exc:  # the scheduler went away (CommClosedError, OSError...)
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since >= LOST_AFTER_S:
                why = str(exc) or type(exc).__name__
                flags.lost = f"the Dask scheduler could not be reached ({why})"
                return
            flags.done.wait(0.5)


class _Sender:
    """Output and samples back to the client, in order, on the worker's batched stream."""

    def __init__(self, worker: Any, topic: str, key: str, cap: int) -> None:
        self.worker = worker
        self.topic = topic
        self.key = key
        self.cap = cap
        self.sent = 0
        self.total = 0
        self.skipped = 0
        self.skipped_lines = 0
        self.pending = bytearray()
        self.partial = b""
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.last_flush = time.monotonic()

    def send(self, kind: str, **data: Any) -> None:
        self.worker.log_event(self.topic, {"key": self.key, "kind": kind, **data})

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = max(self.cap - self.sent - len(self.pending), 0)
        self.pending += chunk[:room]
        if len(chunk) > room:
            self._overflow(chunk[room:])
        if len(self.pending) >= CHUNK_BYTES:
            self.flush()

    def _overflow(self, chunk: bytes) -> None:
        """Past the cap: count it, keep the tail, send only metric lines."""
        self.skipped += len(chunk)
        self.skipped_lines += chunk.count(b"\n")
        self.tail.append(chunk)
        self.tail_size += len(chunk)
        while self.tail_size - len(self.tail[0]) >= TAIL_BYTES:
            self.tail_size -= len(self.tail.popleft())
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()[-65536:]
        metrics = [line for line in lines if line.startswith(b"L3METRIC ")]
        if metrics:
            self.send("metrics", lines=metrics)

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.pending or not (force or len(self.pending) >= CHUNK_BYTES
                                    or now - self.last_flush >= FLUSH_S):  # fmt: skip
            return
        data, self.pending = bytes(self.pending), bytearray()
        for start in range(0, len(data), CHUNK_BYTES):
            self.send("out", data=data[start : start + CHUNK_BYTES])
        self.sent += len(data)
        self.last_flush = now


class _Tree:
    """The task's processes: its group and its leader's descendants (escapees included)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.procs: dict[int, psutil.Process] = {}
        self.peak_cpu = 0.0
        self.peak_rss = 0

    def members(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        try:
            leader = self.procs.get(self.pid) or psutil.Process(self.pid)
            found[self.pid] = leader
            for child in leader.children(recursive=True):
                found[child.pid] = self.procs.get(child.pid, child)
        except psutil.Error:
            pass
        self.procs = found
        return list(found.values())

    def sample(self) -> tuple[float, int]:
        cpu, rss = 0.0, 0
        for proc in self.members():
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        self.peak_cpu = max(self.peak_cpu, cpu)
        self.peak_rss = max(self.peak_rss, rss)
        return round(cpu, 1), rss

    def signal(self, sig: int, leader_reaped: bool) -> bool:
        """`sig` to the group (while it has members) and to every known descendant."""
        sent = False
        try:
            os.killpg(self.pid, sig)
            sent = True
        except (ProcessLookupError, PermissionError):
            pass
        for pid, proc in list(self.procs.items()):
            if leader_reaped and pid == self.pid:
                continue
            try:
                proc.send_signal(sig)  # psutil checks it is still the same process
                sent = True
            except psutil.Error:
                pass
        return sent

    def alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            pass
        return any(_running(p) for pid, p in self.procs.items() if pid != self.pid)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> int | None:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 255 << 8
    return status if got == pid else None


def run_attempt(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt on this worker; the result says how it ended (see module doc)."""
    from distributed import Event, get_worker

    worker = get_worker()
    dask_key = str(worker.get_current_task())
    sender = _Sender(worker, spec["topic"], spec["key"], int(spec["cap"]))
    if Event(spec["cancel"]).is_set():
        return {"cancelled": True}
    reaper = _reaper(worker, float(spec["grace"]))
    env = {**os.environ, **spec["env"]}
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        spawn = os.posix_spawn if "/" in spec["executable"] else os.posix_spawnp
        pid = spawn(
            spec["executable"], list(spec["argv"]), env,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)],
            setsid=True, setsigdef=_RESET, setsigmask=(),
        )  # fmt: skip
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return {"error": f"cannot start {spec['argv'][0]} on {worker.name}: {exc.strerror}"}
    os.close(write_fd)
    _tell(reaper, f"+ {pid}\n")
    tree = _Tree(pid)
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0
    sender.send("placed", worker=worker.address, name=str(worker.name), pid=pid, start=started)
    flags = _Flags()
    threading.Thread(target=_watch_cancel, args=(spec["cancel"], flags), daemon=True,
                     name=f"l3tui-cancel-{spec['key']}").start()  # fmt: skip
    try:
        return _follow(spec, worker, dask_key, sender, tree, read_fd, flags)
    finally:
        flags.done.set()
        os.close(read_fd)
        _tell(reaper, f"- {pid}\n")


def _follow(spec: dict[str, Any], worker: Any, dask_key: str, sender: _Sender, tree: _Tree,
            read_fd: int, flags: _Flags) -> dict[str, Any]:  # fmt: skip
    grace = float(spec["grace"])
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ, "out")
    pidfd: int | None = None
    try:  # readable when the process exits: no polling for its end
        pidfd = os.pidfd_open(tree.pid)
        selector.register(pidfd, selectors.EVENT_READ, "exit")
    except (OSError, AttributeError):
        pass
    status: int | None = None
    exited_at = 0.0
    eof = False
    ending = ""
    next_check = time.monotonic()
    next_sample = next_check + SAMPLE_S / 2  # a task that ends at once is never sampled
    kill_at: float | None = None
    try:
        while True:
            for key, _ in selector.select(timeout=0.05):
                if key.data == "exit":
                    selector.unregister(key.fd)
                    continue
                chunk = os.read(read_fd, 256 * 1024)
                if chunk:
                    sender.feed(chunk)
                else:
                    eof = True
                    selector.unregister(read_fd)
            sender.flush()
            now = time.monotonic()
            if status is None:
                status = _reap(tree.pid)
                if status is not None:
                    exited_at = now
            if status is not None and (eof or now - exited_at > 2.0):
                break  # an escapee (setsid) holding the pipe is ended below
            if not selector.get_map():
                time.sleep(0.01)  # output ended, exit seen, not reaped yet: a moment
            if now >= next_check:
                next_check = now + 0.1
                if not ending:
                    ending = _why_end(flags, worker, dask_key)
                    if ending:
                        tree.members()
                        tree.signal(signal.SIGTERM, status is not None)
                        tree.signal(signal.SIGCONT, status is not None)
                        kill_at = now + grace
                elif kill_at is not None and now >= kill_at:
                    tree.signal(signal.SIGKILL, status is not None)
                    kill_at = None
            if now >= next_sample and status is None:
                next_sample = now + SAMPLE_S
                cpu, rss = tree.sample()
                sender.send("usage", cpu=cpu, rss=rss)
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
    sender.flush(force=True)
    _end_leftovers(tree, grace)
    result: dict[str, Any] = {
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "total": sender.total, "skipped": sender.skipped, "skipped_lines": sender.skipped_lines,
        "tail": b"".join(sender.tail)[-TAIL_BYTES:] if sender.skipped else b"",
        "peak_cpu": tree.peak_cpu, "peak_rss": tree.peak_rss, "worker": worker.address,
    }  # fmt: skip
    if ending and not flags.cancel:
        result["lost"] = ending
    return result


def _why_end(flags: _Flags, worker: Any, dask_key: str) -> str:
    """Why the task must be ended now ('' while it may run)."""
    if flags.cancel:
        return "cancelled"
    if flags.lost:
        return flags.lost
    status = getattr(worker.status, "name", str(worker.status))
    if status in ("closing", "closed", "closing_gracefully", "failed"):
        return f"its worker {worker.name} is {status.replace('_', ' ')} (its scheduler went away?)"
    state = worker.state.tasks.get(dask_key)
    if state is None or state.state == "cancelled":
        return "l3tui let go of the attempt (its client is gone or cancelled it)"
    return ""


def _end_leftovers(tree: _Tree, grace: float) -> None:
    """Whatever the task left running when it ended: SIGTERM, the grace period, SIGKILL."""
    tree.members()
    if not tree.alive():
        return
    tree.signal(signal.SIGTERM, True)
    tree.signal(signal.SIGCONT, True)
    deadline = time.monotonic() + grace
    while tree.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if tree.alive():
        tree.signal(signal.SIGKILL, True)


def signal_group(pgid: int, started: float, sig: int) -> bool:
    """`sig` to a task's process group on this worker, if its leader is still the process
    that was started (pause: SIGSTOP, resume: SIGCONT). Run through `Client.run`."""
    try:
        if abs(psutil.Process(pgid).create_time() - started) > 0.05:
            return False
        os.killpg(pgid, sig)
    except (psutil.Error, OSError):
        return False
    return True


def no_dask_retries(dask_scheduler: Any) -> int:
    """Run on the scheduler: a task whose worker dies fails at once (KilledWorker) instead
    of being run again elsewhere behind l3tui's back; returns the setting it replaced."""
    before = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = 0
    return before
