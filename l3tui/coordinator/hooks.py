"""One run of an event hook: a real process (an argument list, no shell) in a process group
of its own, the event as JSON on its stdin, killed with its whole group at its timeout, and
whatever it left in its group killed when it ends. Reports how it went in one line; it
never raises and never waits past its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

from l3tui.engine.executors.procs import read_proc
from l3tui.sanitize import clean

OUTPUT_KEPT = 2048
AFTER_EXIT_S = 0.5
"""How long output is still read once the hook has exited (a child may hold the pipe)."""


@dataclass(frozen=True, slots=True)
class HookRun:
    """How one run went: `ok`, and a line saying what happened (with its last output)."""

    ok: bool
    detail: str
    pid: int | None = None
    timed_out: bool = False


def _kill_group(pgid: int, leader_reaped: bool) -> None:
    """SIGKILL the hook's group. Once the leader is reaped, a live process holding its pid
    proves the pid was reused, so the group by that id is not ours (while our group had
    members, the kernel could not have handed the pid out)."""
    if leader_reaped and read_proc(pgid) is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_hook(argv: list[str], payload: bytes, timeout_s: float,
                   env: dict[str, str]) -> HookRun:  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, env=env)  # fmt: skip
    except OSError as exc:
        return HookRun(False, f"cannot start {argv[0]}: {exc.strerror or exc}")
    tail = bytearray()

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a hook need not read its input
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    async def collect() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(4096):
            tail.extend(chunk)
            del tail[:-OUTPUT_KEPT]

    reader = asyncio.ensure_future(collect())
    writer = asyncio.ensure_future(feed())
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
        _kill_group(proc.pid, leader_reaped=proc.returncode is not None)
        await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled (l3tui stopping): no hook outlives it
            _kill_group(proc.pid, leader_reaped=False)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2.0)
        _kill_group(proc.pid, leader_reaped=True)  # whatever it left behind in its group
        writer.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(reader, AFTER_EXIT_S)
        reader.cancel()
    output = clean(bytes(tail).decode("utf-8", "replace")).strip().replace("\n", " | ")
    said = f": {output[-300:]}" if output else ""
    if timed_out:
        return HookRun(False, f"timed out after {timeout_s:g}s; killed with its process "
                       f"group{said}", proc.pid, timed_out=True)  # fmt: skip
    code = proc.returncode
    if code == 0:
        return HookRun(True, "ok", proc.pid)
    how = f"exit {code}"
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            how = f"killed by {signal.Signals(-code).name}"
    return HookRun(False, f"{how}{said}", proc.pid)
