"""`l3tui daemon`: the Runtime with no UI, serving consoles over a local socket.

Fires recurring tasks, runs what is submitted, samples resources, raises alerts and records
everything, whether or not anybody is logged in. Logs to STATE/daemon.log (rotated) and, in
the foreground, to stderr. SIGTERM (or Ctrl-C) stops: nothing more starts, then by
`--on-stop` running tasks are cancelled (SIGTERM to each task's group, SIGKILL after the
grace period) or allowed to finish; the store says which. SIGHUP reloads the config.
With NOTIFY_SOCKET set (systemd Type=notify) it says READY=1 once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path

from l3tui.config import Config, load_config, resolve_config_dir, resolve_state_dir
from l3tui.errors import StateError

log = logging.getLogger("l3tui.daemon")
LOG_NAME = "daemon.log"
LOG_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_dir(args.config))
    state_dir = resolve_state_dir(args.state)
    from l3tui.daemon.client import daemon_answers, find_socket

    if daemon_answers(state_dir):
        raise StateError(f"a daemon already serves {state_dir} (socket {find_socket(state_dir)}); "
                         "attach to it with `l3tui`, or stop it first")  # fmt: skip
    _setup_logging(state_dir, verbose=args.verbose)
    for warning in config.warnings:
        log.warning("%s", warning)
    return asyncio.run(serve(config, state_dir, on_stop=args.on_stop))


def _setup_logging(state_dir: Path, *, verbose: bool) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES,
                                                   backupCount=LOG_BACKUPS, encoding="utf-8")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.addHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


async def serve(config: Config, state_dir: Path, *, on_stop: str = "cancel") -> int:
    from l3tui.daemon.notify import sd_notify, watchdog_interval_s
    from l3tui.daemon.server import DaemonServer
    from l3tui.runtime import Runtime
    from l3tui.runtime.actor import current_actor

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    why = {"signal": "stop requested"}

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: cancelling everything now", name)
            why["force"] = name
        why["signal"] = name
        stop.set()

    actor = f"daemon ({current_actor()})"
    async with Runtime(config, state_dir, actor=actor, watch_config=True,
                       fire_schedules=True, coordinate="all") as rt:  # fmt: skip
        if rt.recovery is not None and rt.recovery.needed:
            log.warning("%s", rt.recovery.message())
        # Before the socket answers: a client that sees the daemon may signal it at once.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: rt.spawn(
            rt.reload_config(actor=f"{actor} (SIGHUP)"), "sighup-reload"))  # fmt: skip
        async with DaemonServer(rt, state_dir) as server:
            log.info("l3tui daemon pid %s serving %s on %s", os.getpid(), state_dir, server.path)
            sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving {state_dir}")
            watchdog = watchdog_interval_s()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), watchdog or 3600)
                if watchdog:
                    sd_notify("WATCHDOG=1")
            sd_notify("STOPPING=1")
            await _stop(rt, on_stop, why, stop)
    log.info("l3tui daemon stopped")
    return 0


async def _stop(rt: object, on_stop: str, why: dict[str, str], stop: asyncio.Event) -> None:
    from l3tui.runtime import Runtime

    assert isinstance(rt, Runtime)
    signame = why["signal"]
    rt.drain(f"not started: the daemon is stopping ({signame})")
    active = rt.engine.active()
    if on_stop == "wait" and active:
        log.info("%s: waiting for %d execution(s)' running tasks to finish (again to cancel)",
                 signame, len(active))  # fmt: skip
        while rt.scheduler.running and "force" not in why:
            await asyncio.sleep(0.2)
    for execution in rt.engine.active():
        reason = ("daemon stopped before it could run" if on_stop == "wait" and "force" not in why
                  else f"daemon stopping ({why.get('force', signame)})")  # fmt: skip
        rt.engine.cancel(execution.id, actor=f"{rt.actor}: {reason}")
    await rt.engine.shutdown(actor=f"{rt.actor} ({signame})")
