"""`l3tui submit FILE|-`: hand l3tui a decision (or a JSON array of them).

Through the daemon's socket when one serves the state dir: it records and acts on each at
once, and its outcome is printed (started, already received, rejected and why). Else into
STATE/inbox/ (written under a temporary name, then renamed in), where the console or daemon
that next holds the state dir takes it. Each decision is checked first, as the inbox checks
it: a malformed or oversized one, an unknown kind or a bad id is refused here and never
reaches the others. Exit 0 when every decision was accepted (or was a repeat of one that
was), 1 when any was rejected or could not act.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from l3tui.commands._decisions import check, label, read_input
from l3tui.config import resolve_state_dir
from l3tui.coordinator.decisions import AnyDecision, DecisionError
from l3tui.sanitize import clean


def run(args: argparse.Namespace) -> int:
    name, items = read_input(args.source)
    checked = check(items)
    state_dir = resolve_state_dir(args.state)
    from l3tui.daemon.client import daemon_answers

    if daemon_answers(state_dir):
        outcomes = asyncio.run(_through_daemon(state_dir, items, checked))
    else:
        outcomes = [_into_inbox(state_dir, item) if not isinstance(item, DecisionError)
                    else _refused(item) for item in checked]  # fmt: skip
    failed = False
    for index, outcome in enumerate(outcomes):
        status = outcome["status"]
        failed |= status == "rejected" or outcome.get("applied") is False
        if args.json:
            print(json.dumps({"input": label(name, index, len(outcomes)), **outcome},
                             ensure_ascii=False))  # fmt: skip
            continue
        who = outcome.get("decision_id") or label(name, index, len(outcomes))
        line = f"{who}: {status}: {clean(str(outcome['message']))}"
        print(line, file=sys.stderr if status == "rejected" else sys.stdout)
    return 1 if failed else 0


def _refused(error: DecisionError) -> dict[str, Any]:
    return {"status": "rejected", "decision_id": error.decision_id, "applied": None,
            "message": str(error), "errors": error.errors, "execution_ids": []}  # fmt: skip


async def _through_daemon(state_dir: Path, items: list[Any],
                          checked: list[AnyDecision | DecisionError],
                          ) -> list[dict[str, Any]]:  # fmt: skip
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime.actor import current_actor

    remote = RemoteRuntime(state_dir, actor=current_actor(), client="submit", reconnect=False,
                           follow=False)  # fmt: skip
    await remote.connect()
    try:
        out = []
        for raw, item in zip(items, checked, strict=True):
            # The daemon checks again (and against its config): a refusal here is its too.
            out.append(_refused(item) if isinstance(item, DecisionError)
                       else await remote.submit(raw))  # fmt: skip
        return out
    finally:
        await remote.close()


def _into_inbox(state_dir: Path, decision: AnyDecision) -> dict[str, Any]:
    """Write the decision into the inbox under a temporary name, then rename it in."""
    inbox = state_dir / "inbox"
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    inbox.mkdir(mode=0o700, exist_ok=True)
    token = secrets.token_hex(4)
    final = inbox / f"{decision.id}-{token}.json"  # the id holds no '/' and no '..'
    temp = inbox / f".{decision.id}-{token}.tmp"
    body = json.dumps(decision.model_dump(mode="json", exclude_unset=True), ensure_ascii=False)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)  # fmt: skip
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return {"status": "queued", "decision_id": decision.id, "applied": None,
            "message": f"written to {final} (no daemon answers for {state_dir}; the console "
            "or daemon that next runs there takes it)", "execution_ids": [], "file": str(final)}
