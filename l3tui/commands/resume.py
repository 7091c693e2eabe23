"""`l3tui resume EXEC`: a new execution of the definition EXEC ran (interrupted, failed or
cancelled), keeping its succeeded tasks and running the rest, linked to it; followed to the
end like `l3tui run`. EXEC may be a unique prefix. Exit codes as for `l3tui run`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from l3tui import textdir
from l3tui.commands.run import EXIT_FOR, JsonReporter, LiveReporter, PlainReporter
from l3tui.config import load_config, resolve_config_dir, resolve_state_dir
from l3tui.errors import UsageError


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_dir(args.config))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    state_dir = resolve_state_dir(args.state)
    mode = "json" if args.json else ("live" if sys.stdout.isatty() else "plain")
    bidi = textdir.resolve(args.bidi) and mode == "live"
    return asyncio.run(_resume(config, state_dir, args.execution, mode, bidi))


async def _resume(config: Any, state_dir: Path, prefix: str, mode: str, bidi: bool) -> int:
    from l3tui.engine.runtime import Runtime

    loop = asyncio.get_running_loop()
    async with Runtime(config, state_dir) as rt:
        if rt.recovery is not None and rt.recovery.needed:
            print(f"l3tui: {rt.recovery.message()}", file=sys.stderr)
        sub = rt.subscribe("cli", maxsize=100_000)
        result = await rt.resume_interrupted(prefix)
        if not result.applied or result.execution_id is None:
            raise UsageError(result.message)
        exec_id = result.execution_id
        print(result.message, file=sys.stderr, flush=True)
        interrupted = False

        def on_signal(signum: int) -> None:
            nonlocal interrupted
            interrupted = True
            print(f"\n{signal.Signals(signum).name}: cancelling {exec_id}", file=sys.stderr)
            rt.engine.cancel(exec_id, actor=f"{rt.actor} (signal)")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        reporter = {"live": LiveReporter, "plain": PlainReporter, "json": JsonReporter}[mode](
            rt, exec_id, bidi
        )
        done = asyncio.ensure_future(rt.wait(exec_id))
        try:
            await reporter.follow(sub, done)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        state = done.result().value
        view = rt.execution(exec_id)
        if view is not None:
            reporter.summary(view)
    if interrupted:
        return 130
    return EXIT_FOR.get(state, 1)
