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
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from l3tui.config import Config, load_config, resolve_config_dir, resolve_state_dir
from l3tui.config.durations import parse_duration_ms
from l3tui.engine.api import OpResult, ReservationRequest
from l3tui.errors import LockedError, StateError, UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|m|g|t)?(?:i?b)?\s*$", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory_mb(text: str) -> int:
    """`8G`, `512M`, `1.5GiB`, `2048` (MB) -> whole MB (rounded up)."""
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"--memory expects a size like 8G, 512M or 2048 (MB), got {text!r}")
    mb = float(match.group(1)) * _MB_PER[(match.group(2) or "m").lower()]
    return max(math.ceil(mb - 1e-9), 0)


def parse_pools(items: list[str]) -> tuple[tuple[str, int], ...]:
    """`flutter_build=1` (or `flutter_build`, one slot), repeatable; the same pool twice adds."""
    pools: dict[str, int] = {}
    for item in items:
        name, sep, slots = item.partition("=")
        name = name.strip()
        try:
            count = int(slots) if sep else 1
        except ValueError:
            count = 0
        if not name or count < 1:
            raise UsageError(f"--pool expects NAME=SLOTS with SLOTS >= 1, got {item!r}")
        pools[name] = pools.get(name, 0) + count
    return tuple(pools.items())


def parse_when(text: str, now: float, option: str, after: float | None = None) -> float | None:
    """`now` (None), `+30m`, `18:00` (the next time the clock shows it, after `after` when
    given), or an ISO date-time (`2026-12-01T18:00`, local when it names no offset)."""
    text = text.strip()
    if text.lower() == "now":
        return None
    if text.startswith("+"):
        return now + _duration_s(text[1:], option)
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise UsageError(f"{option} expects a time of day like 18:00, got {text!r}")
        base = datetime.fromtimestamp(after if after is not None else now)
        moment = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        # The next time the clock shows it (a minute's slack: "18:00" typed at 18:00:20).
        if moment.timestamp() < (after if after is not None else now - 60):
            moment += timedelta(days=1)
        return moment.timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"{option} expects now, +30m, a time like 18:00 or an ISO date-time "
                         f"like 2026-12-01T18:00, got {text!r}") from None  # fmt: skip


def _duration_s(text: str, option: str) -> float:
    try:
        value = parse_duration_ms(text)
    except ValueError:
        value = None
    if not isinstance(value, int) or text.strip().isdigit() or value <= 0:
        raise UsageError(f"{option} expects a duration with a unit like 90m, 2h or 1h30m, "
                         f"got {text!r}")  # fmt: skip
    return value / 1000


def request_from(args: argparse.Namespace, now: float) -> ReservationRequest:
    memory = parse_memory_mb(args.memory) if args.memory else 0
    if args.cpu is not None and (not math.isfinite(args.cpu) or args.cpu < 0):
        raise UsageError(f"--cpu expects a number of cores >= 0, got {args.cpu:g}")
    starts = parse_when(args.from_time, now, "--from")
    start = now if starts is None else starts
    if args.until:
        ends = parse_when(args.until, now, "--until", after=start)
        duration = (ends if ends is not None else now) - start
    else:
        duration = _duration_s(args.duration, "--for")
    return ReservationRequest(cpu=args.cpu or 0.0, memory_mb=memory,
                              pools=parse_pools(args.pool), starts_at=starts,
                              duration_s=duration, reason=args.reason or "")  # fmt: skip


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
