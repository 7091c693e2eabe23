"""`l3tui reserve --cpu 4 --memory 8G --pool flutter_build=1 --from 18:00 --for 2h --reason
"release build"`: hold capacity back from the scheduler for a window.

With a daemon serving the state dir, the request goes to it (checked against what it holds,
in force at its start, audited with who asked). With no l3tui running, the reservation is
checked against the config's capacity and the reservations already recorded, and written to
the store: it takes effect when a console, daemon or `l3tui run` next starts, if its window
has not passed. While a console or `l3tui run` holds the state dir (they take no requests
from outside), reserve from that console (`v` on the schedules dashboard) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from l3tui.config import Config, load_config, quantities, resolve_config_dir, resolve_state_dir
from l3tui.engine.api import OpResult, ReservationRequest
from l3tui.errors import LockedError, StateError, UsageError

T = TypeVar("T")

def _parsed(option: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def request_from(args: argparse.Namespace, now: float) -> ReservationRequest:
    if args.cpu is not None and (not math.isfinite(args.cpu) or args.cpu < 0):
        raise UsageError(f"--cpu expects a number of cores >= 0, got {args.cpu:g}")
    memory = _parsed("--memory", lambda: quantities.memory_mb(args.memory)) if args.memory else 0
    pools = _parsed("--pool", lambda: quantities.pool_slots(args.pool))
    starts = _parsed("--from", lambda: quantities.moment(args.from_time, now))
    start = now if starts is None else starts
    if args.until:
        ends = _parsed("--until", lambda: quantities.moment(args.until, now, after=start))
        duration = (ends if ends is not None else now) - start
    else:
        duration = _parsed("--for", lambda: quantities.length_s(args.duration))
    return ReservationRequest(cpu=args.cpu or 0.0, memory_mb=memory, pools=pools,
                              starts_at=starts, duration_s=duration,
                              reason=args.reason or "")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.duration and not args.until:
        raise UsageError("say how long: --for 2h, or --until 20:00")
    if args.duration and args.until:
        raise UsageError("give --for or --until, not both")
    now = time.time()
    request = request_from(args, now)
    state_dir = resolve_state_dir(args.state)
    result, where = act(state_dir, args.config, "reserve", request)
    later = (" (no l3tui is running: it is kept in the store and takes effect when a console, "
             "daemon or `l3tui run` starts)")  # fmt: skip
    return report(result, where, args.json, later if where == "store" else "")


def act(state_dir: Path, config_dir: str | None, method: str,
        payload: ReservationRequest | str) -> tuple[OpResult, str]:  # fmt: skip
    """Send a reservation command to the daemon, or do it on the store when no l3tui runs.
    Returns the outcome and where it was done (daemon or store)."""
    from l3tui.daemon.client import daemon_answers

    if daemon_answers(state_dir):
        return asyncio.run(_remote(state_dir, method, payload)), "daemon"
    # Only a new reservation is checked against the capacity the config gives.
    config = load_config(resolve_config_dir(config_dir)) if method == "reserve" else None
    try:
        return asyncio.run(_offline(config, state_dir, method, payload)), "store"
    except LockedError as exc:
        raise StateError(f"{exc}; that l3tui takes no requests from outside: use its console "
                         "(`v` on the schedules dashboard reserves, `x` there cancels), or run "
                         "l3tui as a daemon (`l3tui daemon`)") from None  # fmt: skip


async def _remote(state_dir: Path, method: str, payload: ReservationRequest | str) -> OpResult:
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime.actor import current_actor

    remote = RemoteRuntime(state_dir, actor=current_actor(), client=method, reconnect=False,
                           follow=False)  # fmt: skip
    await remote.connect()
    try:
        if isinstance(payload, ReservationRequest):
            return await remote.reserve(payload)
        return await remote.cancel_reservation(payload)
    finally:
        await remote.close()


async def _offline(config: Config | None, state_dir: Path, method: str,
                   payload: ReservationRequest | str) -> OpResult:  # fmt: skip
    """No l3tui runs: check against the config's capacity and what the store holds, then
    record through the store's writer (the audit trail included) and stop."""
    from l3tui.runtime.actor import current_actor
    from l3tui.runtime.offline import OfflineReservations

    async with OfflineReservations(config, state_dir, current_actor()) as desk:
        if isinstance(payload, ReservationRequest):
            return await desk.reserve(payload)
        return await desk.cancel(payload)


def report(result: OpResult, where: str, as_json: bool, note: str = "") -> int:
    if as_json:
        print(json.dumps({"applied": result.applied, "message": result.message,
                          "reservation_id": result.reservation_id, "via": where},
                         ensure_ascii=False))  # fmt: skip
    elif result.applied:
        print(result.message + note)
    else:
        print(f"l3tui: {result.message}", file=sys.stderr)
    return 0 if result.applied else 1
