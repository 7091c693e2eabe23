"""`l3tui plan FILE|-`: what a decision (or a JSON array of them) would do, without doing
it: the executions it would create, their tasks in order with priorities and pools, the
expected duration from history (p50 of past runs, "unknown" without), and what would wait
and why. Asked of the daemon when one serves the state dir (judged against what runs
there); else judged here against an idle scheduler and the memory in use now. Read-only.
Exit 0, or 1 when any decision would be rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from l3tui.commands._decisions import check, read_input
from l3tui.config import load_config, resolve_config_dir, resolve_state_dir


def run(args: argparse.Namespace) -> int:
    _name, items = read_input(args.source)
    state_dir = resolve_state_dir(args.state)
    from l3tui.daemon.client import daemon_answers

    if daemon_answers(state_dir):
        plans = asyncio.run(_ask_daemon(state_dir, items))
        where = "judged by the daemon against what runs now"
    else:
        plans = _here(args, state_dir, items)
        where = "no daemon: judged against an idle scheduler and the memory in use now"
    if args.json:
        print(json.dumps(plans, ensure_ascii=False, indent=2))
    else:
        from l3tui.coordinator.planning import DecisionPlan, ExecutionPlan, TaskPlan, text

        objects = [DecisionPlan(**{**p, "executions": [ExecutionPlan(**{
            **e, "tasks": [TaskPlan(**t) for t in e["tasks"]]}) for e in p["executions"]]})
            for p in plans]  # fmt: skip
        print("\n".join(text(objects)))
        print(f"({where})", file=sys.stderr)
    return 1 if any(p["status"] == "rejected" for p in plans) else 0


async def _ask_daemon(state_dir: Path, items: list[Any]) -> list[dict[str, Any]]:
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime.actor import current_actor

    remote = RemoteRuntime(state_dir, actor=current_actor(), client="plan", reconnect=False,
                           follow=False)  # fmt: skip
    await remote.connect()
    try:
        return await remote.plan(items)
    finally:
        await remote.close()


def _here(args: argparse.Namespace, state_dir: Path, items: list[Any]) -> list[dict[str, Any]]:
    import psutil

    from l3tui.coordinator import planning
    from l3tui.errors import StateError
    from l3tui.store.database import connect_readonly, db_path

    config = load_config(resolve_config_dir(args.config))
    checked = check(items)
    now = time.time()
    try:
        conn = connect_readonly(db_path(state_dir))
    except StateError:
        conn = None  # no history yet: every duration is unknown
    try:
        history = planning.load_history(conn, config, checked, now)
        recorded = planning.recorded_of(conn, checked)
    finally:
        if conn is not None:
            conn.close()
    scheduler = planning.idle_scheduler(config, psutil.virtual_memory().percent)
    plans = planning.plan(config, checked, history=history, scheduler=scheduler, now=now,
                          recorded=recorded)  # fmt: skip
    return [p.to_dict() for p in plans]
