"""The audit trail: who did what, when, with what outcome, hash-chained so an edited or
deleted entry is found by `verify`. Each entry's hash covers the previous entry's hash and
the entry's canonical JSON. Each operator action is one entry, from its OperatorAction event
and under its `noun.verb` name (execution.pause, schedule.enable, alert.ack, ...); execution
starts and finishes and crash recoveries are entries of the same scheme, from their events.

Pure functions over events and rows; the store's writer decides when entries are written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from l3tui.engine import events as ev
from l3tui.engine.resources.reservations import from_event

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited fact, before it has a place in the chain."""

    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class ChainedEntry:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


def canonical(seq: int, entry: AuditEntry) -> str:
    """The exact text an entry's hash covers (sorted keys, no spaces, UTF-8 kept)."""
    body = {
        "seq": seq, "at": entry.at, "actor": entry.actor, "action": entry.action,
        "target": entry.target, "outcome": entry.outcome, "detail": entry.detail,
    }  # fmt: skip
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def link_hash(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    return hashlib.sha256((prev_hash + canonical(seq, entry)).encode()).hexdigest()


def chain(entries: Iterable[AuditEntry], last_seq: int, last_hash: str) -> list[ChainedEntry]:
    """Give each entry its sequence number and hash, continuing after (last_seq, last_hash)."""
    out = []
    seq, prev = last_seq, last_hash
    for entry in entries:
        seq += 1
        digest = link_hash(prev, seq, entry)
        out.append(ChainedEntry(seq, entry, prev, digest))
        prev = digest
    return out


def _scheduled(trigger: str) -> bool:
    return trigger.startswith(("schedule", "cron", "after:"))


AUDITED: frozenset[type[ev.Event]] = frozenset({
    ev.OperatorAction, ev.ExecutionCreated, ev.ExecutionStarted, ev.ExecutionFinished,
    ev.DecisionReceived, ev.DecisionRejected, ev.SystemNotice, ev.ReservationChanged,
})  # fmt: skip
"""The event types `entries_for` may turn into entries (or must see: ExecutionCreated)."""


def entries_for(
    event: ev.Event, default_actor: str, triggers: dict[str, str]
) -> Iterator[AuditEntry]:
    """The audit entries an event stands for (most events stand for none).

    `triggers` maps execution ids to what started them, so a scheduled start is not
    attributed to the person who happens to run the console.
    """
    at = event.at
    if isinstance(event, ev.OperatorAction):  # the one entry of each operator action
        target = event.target or event.execution_id or ""
        if event.task_id:
            target = f"{target}/{event.task_id}"
        yield AuditEntry(at, event.actor or default_actor, event.action, target,
                         "applied" if event.applied else "refused", event.detail)  # fmt: skip
    elif isinstance(event, ev.ExecutionCreated):
        triggers[event.execution_id] = event.trigger
    elif isinstance(event, ev.ExecutionStarted):
        trigger = triggers.get(event.execution_id, "")
        actor = f"scheduler ({trigger})" if _scheduled(trigger) else default_actor
        yield AuditEntry(at, actor, "execution.start", event.execution_id, "started",
                         f"trigger: {trigger or '?'}")  # fmt: skip
    elif isinstance(event, ev.ExecutionFinished):
        trigger = triggers.pop(event.execution_id, "")
        actor = f"scheduler ({trigger})" if _scheduled(trigger) else default_actor
        if event.state == "interrupted":
            actor = "recovery"
        yield AuditEntry(at, actor, "execution.finish", event.execution_id, event.state,
                         f"{event.workflow_id}: {event.reason}".rstrip(": "))  # fmt: skip
    elif isinstance(event, ev.DecisionReceived):
        yield AuditEntry(at, f"{event.source or 'unknown'} (decision via {event.via})",
                         "decision.receive", event.decision_id,
                         "duplicate" if event.duplicate else "recorded",
                         event.decision_kind)  # fmt: skip
    elif isinstance(event, ev.DecisionRejected):
        yield AuditEntry(at, f"unknown (decision via {event.via})", "decision.receive",
                         event.decision_id or "", "rejected", event.reason)  # fmt: skip
    elif isinstance(event, ev.ReservationChanged):
        verb = {"made": "make", "started": "start", "ended": "end",
                "cancelled": "cancel"}.get(event.change, event.change)  # fmt: skip
        outcome = "applied" if event.change == "made" else event.change
        window = (f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(event.starts_at))} to "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(event.ends_at))}")
        detail = f"{from_event(event).holds()}, {window}"
        yield AuditEntry(at, event.actor or default_actor, f"reservation.{verb}",
                         event.reservation_id, outcome,
                         f"{detail}: {event.reason}" if event.reason else detail)  # fmt: skip
    elif isinstance(event, ev.SystemNotice) and event.topic == "recovery":
        outcome = "failed" if event.severity == "error" else "done"
        yield AuditEntry(at, default_actor, "state.recover", "", outcome, event.message)


# ------------------------------------------------------------------ reading & verifying


def row_entry(row: Sequence[Any]) -> ChainedEntry:
    """A chained entry from a row selected as AUDIT_COLUMNS."""
    seq, at, actor, action, target, outcome, detail, prev_hash, digest = row
    entry = AuditEntry(float(at), str(actor), str(action), str(target), str(outcome),
                       str(detail))  # fmt: skip
    return ChainedEntry(int(seq), entry, str(prev_hash), str(digest))


AUDIT_COLUMNS = "seq, at, actor, action, target, outcome, detail, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    checked: int
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(rows: Iterable[ChainedEntry]) -> VerifyResult:
    """Walk the chain in sequence order; report the first entry whose link does not hold."""
    prev_hash, prev_seq, checked = GENESIS, 0, 0
    for item in rows:
        if item.seq != prev_seq + 1:
            return VerifyResult(checked, item.seq,
                                f"entries {prev_seq + 1}..{item.seq - 1} are missing")  # fmt: skip
        if item.prev_hash != prev_hash:
            return VerifyResult(checked, item.seq,
                                "it does not link to the entry before it")  # fmt: skip
        if link_hash(prev_hash, item.seq, item.entry) != item.hash:
            return VerifyResult(checked, item.seq, "its content does not match its hash")
        prev_hash, prev_seq = item.hash, item.seq
        checked += 1
    return VerifyResult(checked)
