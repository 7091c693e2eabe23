"""`l3tui` (or `l3tui console`): when a daemon serves the state dir, attach to it (same
panes and keys; quitting detaches and leaves the work running). Otherwise load the config,
start the Runtime in this process with the config watcher on, and run the console on top
of it until the user quits; quitting then cancels what still runs (the console asks first)
and waits, bounded, for its processes to end. SIGHUP (the terminal went away: SSH dropped,
tmux session killed) and SIGTERM do the same without asking: executions are cancelled (as
`terminal lost (SIGHUP)`, `SIGHUP` or `SIGTERM`) and l3tui exits 130.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any

from l3tui import textdir
from l3tui.commands.hangup import Hangup
from l3tui.config import load_config, resolve_config_dir, resolve_state_dir
from l3tui.errors import UsageError


def run(args: argparse.Namespace) -> int:
    if not sys.stdout.isatty() and not os.environ.get("L3TUI_FORCE_CONSOLE"):
        raise UsageError("the console needs a terminal; use `l3tui run WORKFLOW` for headless runs")
    state_dir = resolve_state_dir(getattr(args, "state", None))
    from l3tui.dashboard.keymap import parse_keymap
    from l3tui.dashboard.themes import pick_theme

    options = {
        "theme": pick_theme(getattr(args, "theme", "auto")),
        "bidi": textdir.resolve(getattr(args, "bidi", "auto")),
        "keymap_overrides": parse_keymap(os.environ.get("L3TUI_KEYMAP", "")),
    }
    from l3tui.daemon.client import daemon_answers

    if daemon_answers(state_dir):  # the daemon's config governs; ours is not read
        return asyncio.run(_attached(state_dir, options))
    config = load_config(resolve_config_dir(getattr(args, "config", None)))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    return asyncio.run(_console(config, state_dir, options))


async def _attached(state_dir: Path, options: dict[str, Any]) -> int:
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.dashboard.app import ConsoleApp
    from l3tui.runtime.actor import current_actor

    remote = RemoteRuntime(state_dir, actor=current_actor(), client="console")
    await remote.connect()
    try:
        app = ConsoleApp(remote, in_process=False, **options)
        await app.run_async()
    finally:
        await remote.close()
    return app.return_code or 0


async def _console(config: Any, state_dir: Path, options: dict[str, Any]) -> int:
    from l3tui.dashboard.app import ConsoleApp
    from l3tui.runtime import Runtime

    # The console is the long-lived process: it fires recurring tasks (`l3tui run` does not).
    # adopt_orphans: this process is l3tui alone, whatever re-parents to it is a task's.
    async with Runtime(config, state_dir, watch_config=True, fire_schedules=True,
                       adopt_orphans=True, coordinate="all") as rt:  # fmt: skip
        app = ConsoleApp(rt, **options)

        def stop(reason: str) -> None:
            # SIGHUP: no terminal left to ask on; SIGTERM: asked to stop. Cancel here.
            for execution in rt.engine.active():
                rt.engine.cancel(execution.id, actor=f"{rt.actor} ({reason})", reason=reason)
            app.quit_now()

        loop = asyncio.get_running_loop()
        hangup = Hangup(stop).install()
        loop.add_signal_handler(signal.SIGTERM, stop, "SIGTERM")
        # What exists now (modules, config models, the Runtime, a queue found on start)
        # lives as long as the console: keep the cyclic GC from rescanning it on every
        # full collection (0.3 s of pauses during the first paint with 100,000 queued).
        gc.freeze()
        try:
            await app.run_async()
        finally:
            hangup.remove()
            loop.remove_signal_handler(signal.SIGTERM)
        active = rt.engine.active()
        if active:
            print(f"l3tui: cancelling {len(active)} execution(s) before exit…", file=sys.stderr)
    return app.return_code or 0
