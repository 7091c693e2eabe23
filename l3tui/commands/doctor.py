"""`l3tui doctor`: ask the daemon serving the state dir how it is, and say what to do.

Every check (event-loop lag, store latency and backlog, queue depth and oldest wait,
resource sampler freshness, connected clients) with its state and advice, then a verdict.
Exit 0 healthy or degraded, 1 unhealthy or when no daemon answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from l3tui.config import resolve_state_dir
from l3tui.daemon.wire import to_wire
from l3tui.engine.api import HealthView
from l3tui.errors import StateError

MARK = {"ok": "ok  ", "warn": "WARN", "bad": "BAD "}


def run(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state)
    try:
        health = asyncio.run(_ask(state_dir))
    except StateError as exc:
        if args.json:
            print(json.dumps({"verdict": "unreachable", "error": str(exc)}))
        else:
            print(f"unreachable: {exc}")
            print("start one with `l3tui daemon` (or see README: Daemon)")
        return 1
    if args.json:
        print(json.dumps(to_wire(health), ensure_ascii=False))
    else:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(health.since))
        print(f"daemon pid {health.pid} on {health.host}, up since {since}")
        width = max(len(c.name) for c in health.checks)
        for check in health.checks:
            print(f"  {MARK.get(check.state, check.state)}  {check.name:<{width}}  {check.value}")
            if check.advice:
                print(f"  {'':4}  {'':<{width}}  -> {check.advice}")
        print(f"verdict: {health.verdict}")
    return 1 if health.verdict == "unhealthy" else 0


async def _ask(state_dir: object) -> HealthView:
    from pathlib import Path

    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime.actor import current_actor

    assert isinstance(state_dir, Path)
    remote = RemoteRuntime(state_dir, actor=current_actor(), client="doctor", reconnect=False,
                           follow=False)  # fmt: skip
    await remote.connect(within_s=5.0)
    try:
        return await remote.health()
    finally:
        await remote.close()
