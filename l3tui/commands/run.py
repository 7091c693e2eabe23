"""`l3tui run WORKFLOW [-p k=v]`: run one workflow to the end, headless.

On a terminal a live tree (one line per task: state, name, attempt, duration, last output
line); otherwise plain timestamped lines (task output prefixed with the task id), or JSON
lines with `--json`. Exit 0 succeeded, 1 failed or cancelled, 130 interrupted. The first
Ctrl-C (or SIGTERM, or SIGHUP: the terminal went away) cancels: every task gets SIGTERM,
then SIGKILL after the grace period; a second Ctrl-C kills at once.

What is printed is what the store has committed: lines come from a committed subscription
and the live tree shows a state once the store has it, so a task printed as succeeded is on
disk. Exit 1 as well when part of the run could not be recorded; `--no-record` runs without
the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l3tui import textdir
from l3tui.commands._reporters import REPORTERS
from l3tui.commands.hangup import Hangup
from l3tui.config import Config, load_config, resolve_config_dir, resolve_state_dir
from l3tui.engine.api import OpResult
from l3tui.errors import UsageError

if TYPE_CHECKING:
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime import Runtime

EXIT_FOR = {"succeeded": 0, "failed": 1, "cancelled": 1, "interrupted": 130}


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = value
    return params


def output_mode(args: argparse.Namespace) -> tuple[str, bool]:
    """(live | plain | json, whether to shape Arabic) for this stdout."""
    mode = "json" if args.json else ("live" if sys.stdout.isatty() else "plain")
    return mode, textdir.resolve(args.bidi) and mode == "live"


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_dir(args.config))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    params = parse_params(args.param)
    mode, bidi = output_mode(args)

    async def start(rt: Runtime | RemoteRuntime) -> OpResult:
        # Through the Runtime's command, so the run is an audited operator action.
        return await rt.run_workflow(args.workflow, params, trigger="cli")

    record = not getattr(args, "no_record", False)
    return follow(config, resolve_state_dir(args.state), start, mode, bidi, record=record)


def follow(config: Config, state_dir: Path, start: Callable[[Any], Awaitable[OpResult]],
           mode: str, bidi: bool, *, record: bool = True) -> int:  # fmt: skip
    """Run in the daemon serving `state_dir` if one does, else in this process. `--no-record`
    always runs here (without the store, so beside a daemon too)."""
    from l3tui.daemon.client import daemon_answers

    if record and daemon_answers(state_dir):
        from l3tui.commands._attached import follow_attached

        return asyncio.run(follow_attached(state_dir, start, mode, bidi))
    return asyncio.run(start_and_follow(config, state_dir, start, mode, bidi, record=record))


async def start_and_follow(
    config: Config,
    state_dir: Path,
    start: Callable[[Runtime], Awaitable[OpResult]],
    mode: str,
    bidi: bool,
    *,
    record: bool = True,
) -> int:
    """Open a Runtime, start an execution with `start`, follow it to the end; the exit code.

    The first Ctrl-C (or SIGTERM) cancels it: SIGTERM to every task's process group, SIGKILL
    after the grace period. A second Ctrl-C kills what is left at once."""
    from l3tui.runtime import Runtime

    loop = asyncio.get_running_loop()
    # adopt_orphans: this process is l3tui alone, whatever re-parents to it is a task's.
    # coordinate="out": results to the outbox and events to the sinks; it takes no decisions.
    async with Runtime(config, state_dir, adopt_orphans=True, record=record,
                       coordinate="out") as rt:  # fmt: skip
        for note in rt.store.notes:
            print(f"l3tui: warning: {note}", file=sys.stderr)
        if rt.recovery is not None and rt.recovery.needed:
            print(f"l3tui: {rt.recovery.message()}", file=sys.stderr)
        if not record:
            print("l3tui: --no-record: nothing of this run is recorded (no history, no audit "
                  "trail, no recovery after a crash)", file=sys.stderr)  # fmt: skip
        sub = rt.subscribe("cli", maxsize=100_000, committed=True)  # print what is on disk
        started = await start(rt)
        if not started.applied or started.execution_id is None:
            raise UsageError(started.message)
        exec_id = started.execution_id
        interrupted = False

        def on_signal(signum: int, reason: str = "") -> None:
            nonlocal interrupted
            if interrupted:  # the second one: no more grace (a hangup never escalates)
                if signum != signal.SIGHUP:
                    rt.executor.kill_all()
                return
            interrupted = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            with contextlib.suppress(OSError):  # stderr may be a terminal that is gone
                print(f"\n{reason or name}: cancelling {exec_id} (Ctrl-C again to kill at once)",
                      file=sys.stderr, flush=True)  # fmt: skip
            rt.engine.cancel(exec_id, actor=f"{rt.actor} ({name})", reason=reason)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        # SIGHUP (the terminal went away) is SIGTERM, after pointing a dead terminal at
        # /dev/null so nothing below fails writing to it.
        hangup = Hangup(lambda reason: on_signal(signal.SIGHUP, reason)).install()
        reporter = REPORTERS[mode](rt, exec_id, bidi)
        done = asyncio.ensure_future(rt.wait(exec_id))
        try:
            try:
                await reporter.follow(sub, done)
            except OSError:
                if not hangup.write_failed():  # not a terminal that hung up
                    raise
                await asyncio.wait([done])  # being cancelled: nothing more to show
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            hangup.remove()
        state = done.result().value
        view = rt.execution(exec_id)
        await rt.bus.durable()  # the summary says what the store has
        if view is not None:
            reporter.summary(view)
    code = 130 if interrupted else EXIT_FOR.get(state, 1)
    return max(code, _recording_outcome(rt))


def _recording_outcome(rt: Runtime) -> int:
    """1 when part of the run could not be recorded (the store logged what), else 0."""
    store = rt.store
    if not rt.record:
        return 0
    if store.problem() is not None:
        return 1
    if store.outage_s:
        print(f"l3tui: the state database could not be written for {store.outage_s:.1f}s; "
              f"all {store.held_peak} event(s) held meanwhile were written", file=sys.stderr)
    return 0
