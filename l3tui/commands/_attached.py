"""`l3tui run` and `l3tui resume` when a daemon serves the state dir: the execution is
submitted to the daemon and followed from its events, printed exactly as a local run prints
it. The first Ctrl-C (or SIGTERM, SIGHUP) asks the daemon to cancel it (the daemon sends
SIGTERM, waits the grace period, then SIGKILL); a second one stops following at once and
leaves the daemon to finish the cancel. Exit codes as for a local run.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l3tui.engine import events as ev
from l3tui.engine.api import TERMINAL_EXEC_STATES, OpResult
from l3tui.engine.bus import Subscription
from l3tui.errors import UsageError

if TYPE_CHECKING:
    from l3tui.daemon.client import RemoteRuntime

EXIT_FOR = {"succeeded": 0, "failed": 1, "cancelled": 1, "interrupted": 130}


class ExecutionEvents:
    """The events of one execution out of everything the daemon pushes (the reporters read
    `get_batch_wait` and `drain`, as from a Subscription)."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.execution_id: str | None = None

    async def get_batch_wait(self) -> None:
        await self.sub.get_batch_wait()

    def drain(self) -> list[ev.Event]:
        wanted = self.execution_id
        return [e for e in self.sub.drain() if getattr(e, "execution_id", None) == wanted]


async def follow_attached(state_dir: Path,
                          start: Callable[[RemoteRuntime], Awaitable[OpResult]],
                          mode: str, bidi: bool) -> int:  # fmt: skip
    from l3tui.commands._reporters import REPORTERS
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime.actor import current_actor

    # The live tree draws from the mirror (snapshots); plain and JSON lines need events only.
    remote = RemoteRuntime(state_dir, actor=current_actor(), client="run",
                           snapshots=mode == "live")  # fmt: skip
    await remote.connect()  # closes itself if it fails
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    interrupted = False
    exec_id: str | None = None
    requests: set[asyncio.Future[OpResult]] = set()

    def on_signal(signum: int) -> None:
        nonlocal interrupted
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if interrupted:
            print(f"\n{name}: no longer following {exec_id or 'the run'}; the daemon "
                  "finishes the cancel", file=sys.stderr, flush=True)  # fmt: skip
            if not done.done():
                done.set_result("cancelled")
            return
        interrupted = True
        if exec_id is None:  # the daemon has not answered the start yet: cancel once it has
            print(f"\n{name}: asking the daemon to cancel the run once it has started it "
                  "(again to stop following)", file=sys.stderr, flush=True)  # fmt: skip
            return
        print(f"\n{name}: asking the daemon to cancel {exec_id} (again to stop following)",
              file=sys.stderr, flush=True)  # fmt: skip
        requests.add(asyncio.ensure_future(remote.cancel(exec_id)))

    # From before the start: a Ctrl-C while the daemon starts the run (its tasks may be
    # running before the answer arrives) must cancel it there, not leave it running.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        events = ExecutionEvents(remote.subscribe("cli", maxsize=100_000))
        started = await start(remote)
        if not started.applied or started.execution_id is None:
            raise UsageError(started.message)
        exec_id = events.execution_id = started.execution_id
        if interrupted:
            requests.add(asyncio.ensure_future(remote.cancel(exec_id)))
        await remote.follow_execution(exec_id)
        print(f"l3tui: running in the daemon (pid {remote.daemon.get('pid')}) as {exec_id}",
              file=sys.stderr, flush=True)  # fmt: skip

        heard = [loop.time()]

        def finished(event: ev.Event) -> None:
            if getattr(event, "execution_id", None) == exec_id:
                heard[0] = loop.time()
            if (isinstance(event, ev.ExecutionFinished) and event.execution_id == exec_id
                    and not done.done()):  # fmt: skip
                done.set_result(str(event.state))

        remote.bus.add_listener(finished)
        watcher = asyncio.ensure_future(_watch_state(remote, exec_id, done, heard))
        reporter: Any = REPORTERS[mode](remote, exec_id, bidi)
        try:
            await reporter.follow(events, done)
        finally:
            watcher.cancel()
        state = done.result()
        if remote.resyncs:
            print(f"l3tui: this terminal fell behind the daemon {remote.resyncs} time(s) and "
                  f"some lines were skipped; `l3tui logs {exec_id}` has all the output",
                  file=sys.stderr)  # fmt: skip
        view = await remote.fetch_execution(exec_id)
        if view is not None:
            reporter.summary(view)
            state = view.state if view.state in TERMINAL_EXEC_STATES else state
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await remote.close()
    if interrupted:
        return 130
    return EXIT_FOR.get(state, 1)


async def _watch_state(remote: RemoteRuntime, exec_id: str, done: asyncio.Future[str],
                       heard: list[float], quiet_s: float = 5.0) -> None:  # fmt: skip
    """The end may come without its event: the daemon died and its successor marked the run
    interrupted. Once the daemon says the execution ended, its last events may still be on
    their way: wait for them until nothing of it came for `quiet_s`."""
    loop = asyncio.get_running_loop()
    while not done.done():
        await asyncio.sleep(1.0)
        view = remote.execution(exec_id)
        if (view is not None and view.state in TERMINAL_EXEC_STATES and not done.done()
                and loop.time() - heard[0] > quiet_s):  # fmt: skip
            done.set_result(view.state)
