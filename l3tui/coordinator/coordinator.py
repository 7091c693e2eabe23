"""The Execution Coordinator (the seed's `processL2Decisions`, `executeTask`, `executeBatch`,
`subscribeToL1Updates`, `reportToL2`, `handleSystemEvents`): decisions in from the inbox and
the daemon's socket, results out to the outbox, events out to the sinks.

A decision is checked, then its id is recorded in the store, and only then does it act,
through the Runtime's commands (so it is audited like any operator's). The same id again
acts no more, across restarts: a decision recorded but not acted on (l3tui was killed in
between, or it waits for `not_before`) acts at the next start, unless an execution it
started is found, which proves it had acted. Decisions are handled one batch at a time, in
arrival order; runs in a batch start together, a cancel after a run sees that run.

It runs inside the Runtime holding the state dir (a daemon, a console running its own work,
or `l3tui run` for results and sinks only) and never imports it: the Runtime hands itself in
as a `Host`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from l3tui.config.loader import Config
from l3tui.coordinator import planning, reserving
from l3tui.coordinator.acting import Host, Start, starts
from l3tui.coordinator.decisions import (
    RUN_KINDS,
    AnalysisUpdate,
    AnyDecision,
    Cancel,
    CancelReservation,
    DecisionError,
    Pause,
    Reserve,
    Resume,
    canonical,
    digest,
    parse_decision,
    validate_decision,
    when_at,
)
from l3tui.coordinator.inbox import Claimed, Inbox, Watcher, display_name
from l3tui.coordinator.outbox import Outbox
from l3tui.coordinator.sinks import EventSinks
from l3tui.engine import events as ev
from l3tui.errors import StateError
from l3tui.store import coordination as db
from l3tui.store.writer import DatabaseReplaced

log = logging.getLogger(__name__)

BATCH = 500
"""Inbox files taken per round: one transaction records them all."""
PRUNE_EVERY_S = 3600.0


@dataclass(slots=True)
class Incoming:
    """A decision as it arrived: the model, or why it cannot be one."""

    decision: AnyDecision | None
    error: DecisionError | None
    via: str
    file: Claimed | None = None


@dataclass(slots=True)
class Outcome:
    """What became of one decision: accepted (recorded; `applied` says whether acting
    worked, None while it waits), duplicate, or rejected; and a sentence saying so."""

    status: str
    message: str
    decision_id: str | None = None
    applied: bool | None = None
    execution_ids: tuple[str, ...] = ()
    waits_until: float | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "decision_id": self.decision_id, "applied": self.applied,
                "message": self.message, "execution_ids": list(self.execution_ids),
                "waits_until": self.waits_until, "errors": self.errors}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Acted:
    applied: bool
    message: str
    execution_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class _Due:
    decision: AnyDecision
    received_at: float
    via: str
    planned: list[Start] | None = None
    """What it starts, as judged on receipt (reused when it acts at once, same config)."""
    config: Config | None = None


class Coordinator:
    """Owns the inbox watcher, the outbox and the sinks of one Runtime."""

    def __init__(self, host: Host, *, inbox: bool = True, outbox: bool = True) -> None:
        self.host = host
        self.config: Config = host.config
        events = self.config.scheduling_file.events
        self.take_inbox = inbox
        self.inbox = Inbox(host.state_dir / "inbox")
        self.outbox = (Outbox(host.state_dir / "outbox", events.outbox, host.store, host.bus,
                              host.clock.time) if outbox else None)  # fmt: skip
        self.sinks = EventSinks(events, host.bus, host.state_dir, host.clock.time)
        self.watcher: Watcher | None = None
        self.started: dict[str, tuple[str, ...]] = {}
        """Execution ids each decision started (this process's, and those looked up)."""
        self.received = 0
        self.rejected = 0
        self._waiting: dict[str, tuple[asyncio.TimerHandle, _Due]] = {}
        self._lock = asyncio.Lock()
        self._running = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Sinks first (they see what follows), then the outbox (books what a crash left),
        then decisions left recorded but not acted on, then the inbox."""
        self.sinks.start(self.host.spawn)
        if self.outbox is not None:
            await self.outbox.start()
            self.host.spawn(self.outbox.run(), "outbox")
        if self.take_inbox:
            await asyncio.to_thread(self.inbox.open)
            await self._recover()
            self.watcher = Watcher(self.inbox.root)
            self.watcher.start()
            self.host.spawn(self._inbox_loop(), "inbox")
        self._running = True

    async def close(self) -> None:
        """After the engine stopped: results and events of what ended go out (bounded)."""
        if not self._running:
            return
        self._running = False
        for handle, _ in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        if self.watcher is not None:
            self.watcher.close()
        if self.outbox is not None:
            await self.outbox.drain()
        await self.sinks.drain()
        await self.sinks.close()
        if self.outbox is not None:
            self.outbox.close()
        self.inbox.close()

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: new decisions are checked against it; changed sinks replace
        the old ones (the new ones start before the old ones stop: none is missed)."""
        old_events = self.config.scheduling_file.events
        self.config = config
        events = config.scheduling_file.events
        if self._running and events.sinks != old_events.sinks:
            old, self.sinks = self.sinks, EventSinks(events, self.host.bus, self.host.state_dir,
                                                     self.host.clock.time)  # fmt: skip
            self.sinks.start(self.host.spawn)
            self.host.spawn(old.close(), "sinks-replaced")

    # ------------------------------------------------------------------ ways in

    async def submit(self, payload: Any, via: str) -> Outcome:
        """One decision from the socket (parsed JSON, or its text): checked, recorded, acted
        on, exactly as from the inbox."""
        if self.host.scheduler.draining:
            raise StateError(f"not accepted: {self.host.scheduler.draining}")
        try:
            if isinstance(payload, str | bytes):
                decision = parse_decision(payload)
            else:
                decision = validate_decision(payload)
            item = Incoming(decision, None, via)
        except DecisionError as exc:
            item = Incoming(None, exc, via)
        try:
            return (await self.intake([item]))[0]
        except (sqlite3.Error, DatabaseReplaced) as exc:
            raise StateError(f"not accepted: the decision cannot be recorded ({exc})") from None

    async def plan(self, payloads: Sequence[Any]) -> list[dict[str, Any]]:
        """What these decisions would do now (`l3tui plan` through the daemon): judged
        against the live scheduler; nothing is recorded or started."""
        items: list[AnyDecision | DecisionError] = []
        for payload in payloads:
            try:
                items.append(validate_decision(payload))
            except DecisionError as exc:
                items.append(exc)
        now = self.host.clock.time()
        config = self.config

        def read(conn: sqlite3.Connection) -> tuple[planning.History, dict[str, db.Recorded]]:
            return (planning.load_history(conn, config, items, now),
                    planning.recorded_of(conn, items))  # fmt: skip

        history, recorded = await self.host.store.read(read)
        plans = planning.plan(config, items, history=history, scheduler=self.host.scheduler,
                              now=now, recorded=recorded)  # fmt: skip
        return [p.to_dict() for p in plans]

    async def intake(self, items: Sequence[Incoming]) -> list[Outcome]:
        """Check, record (one transaction), then act on each decision, in order. Raises
        sqlite3 errors when the store cannot record: then nothing acted."""
        async with self._lock:
            return await self._intake(items)

    async def _intake(self, items: Sequence[Incoming]) -> list[Outcome]:
        now = self.host.clock.time()
        outcomes: list[Outcome | None] = [None] * len(items)
        pending: list[tuple[int, AnyDecision, db.DecisionRecord]] = []
        planned: dict[int, list[Start]] = {}
        # A reserve's id already recorded is a repeat (or an id reused), not a new booking
        # to check against the book, which holds its reservation already.
        reserves = [i.decision.id for i in items if isinstance(i.decision, Reserve)]
        repeats = (await self.host.store.read(
            lambda conn: {r for r in reserves if db.decision(conn, r) is not None})
            if reserves else set())  # fmt: skip
        for index, item in enumerate(items):
            decision = item.decision
            try:
                if item.error is not None or decision is None:
                    raise item.error or DecisionError("no decision")
                planned[index] = starts(self.config, decision, now, now)  # can it act at all?
                not_before = (when_at(decision.not_before, now)
                              if decision.not_before is not None else None)  # fmt: skip
                if isinstance(decision, Reserve) and decision.id not in repeats:
                    # Refused now: rejected, nothing recorded.
                    reserving.check(self.host.scheduler.book, decision, now,
                                    max(not_before or now, now))  # fmt: skip
            except DecisionError as exc:
                outcomes[index] = self._reject(item, exc)
                continue
            body = canonical(decision)
            pending.append((index, decision, db.DecisionRecord(
                decision.id, decision.kind, body, digest(body), decision.source, item.via, now,
                not_before)))  # fmt: skip
        known: list[db.Recorded | None] = []
        if pending:
            records = [record for _, _, record in pending]
            known = await self.host.store.transact(partial(db.record_decisions, records=records))
        due: list[tuple[int, _Due]] = []
        for (index, decision, record), seen in zip(pending, known, strict=True):
            outcomes[index] = self._received(decision, record, seen, items[index], due, index)
        for index, entry in due:
            entry.planned, entry.config = planned[index], self.config
        acted = await self._act_all([entry for _, entry in due])
        for (index, _), result in zip(due, acted, strict=True):
            outcome = outcomes[index]
            assert outcome is not None
            if result is None:
                outcome.message = f"recorded {outcome.decision_id}; it acts when l3tui starts next"
            else:
                outcome.applied = result.applied
                outcome.message = result.message
                outcome.execution_ids = result.execution_ids
        return [o for o in outcomes if o is not None]

    def _received(self, decision: AnyDecision, record: db.DecisionRecord,
                  seen: db.Recorded | None, item: Incoming, due: list[tuple[int, _Due]],
                  index: int) -> Outcome:  # fmt: skip
        at = self.host.clock.time()
        if seen is not None and seen.digest != record.digest:
            when = _stamp(seen.received_at)
            return self._reject(item, DecisionError(
                f"the id {decision.id!r} was already used at {when} for a different decision "
                "(an id is used once; give this one a new id)", decision_id=decision.id))
        if seen is not None:
            self.host.bus.publish(ev.DecisionReceived(
                at=at, decision_id=decision.id, decision_kind=decision.kind,
                source=decision.source, via=item.via, duplicate=True))  # fmt: skip
            state = {"received": "not acted on yet", "cancelled": "withdrawn"}.get(
                seen.state, seen.message or seen.state)  # fmt: skip
            return Outcome("duplicate", f"{decision.id} was already received at "
                           f"{_stamp(seen.received_at)}; nothing more done ({state})",
                           decision.id, seen.applied, seen.executions)  # fmt: skip
        self.received += 1
        self.host.bus.publish(ev.DecisionReceived(
            at=at, decision_id=decision.id, decision_kind=decision.kind, source=decision.source,
            via=item.via, not_before=record.not_before))  # fmt: skip
        entry = _Due(decision, record.received_at, item.via)
        if record.not_before is not None and record.not_before > at:
            self._arm(entry, record.not_before)
            return Outcome("accepted", f"recorded {decision.id}; it acts at "
                           f"{_stamp(record.not_before)}", decision.id,
                           waits_until=record.not_before)  # fmt: skip
        due.append((index, entry))
        return Outcome("accepted", f"recorded {decision.id}", decision.id)

    def _reject(self, item: Incoming, exc: DecisionError) -> Outcome:
        self.rejected += 1
        decision_id = exc.decision_id or (item.decision.id if item.decision else None)
        self.host.bus.publish(ev.DecisionRejected(at=self.host.clock.time(),
                                                  decision_id=decision_id, via=item.via,
                                                  reason=str(exc)))  # fmt: skip
        return Outcome("rejected", str(exc), decision_id, errors=list(exc.errors))

    # ------------------------------------------------------------------ acting

    def _arm(self, entry: _Due, at: float) -> None:
        """Act at `at` (not_before); a cancel naming the decision withdraws it first."""
        delay = max(at - self.host.clock.time(), 0.0)
        decision_id = entry.decision.id

        def fire() -> None:
            self.host.spawn(self._act_waiting(decision_id), f"decision-{decision_id}")

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._waiting[decision_id] = (handle, entry)

    async def _act_waiting(self, decision_id: str) -> None:
        async with self._lock:
            waiting = self._waiting.pop(decision_id, None)
            if waiting is not None:
                await self._act_all([waiting[1]])

    async def _act_all(self, entries: list[_Due]) -> list[Acted | None]:
        """Act on each, in order: runs next to each other start together (their creations
        share a commit); anything else acts alone, after what came before it. Then record
        what was done. None for a decision left to the next start (l3tui is stopping)."""
        results: list[Acted | None] = []
        group: list[_Due] = []
        for entry in [*entries, None]:
            if entry is not None and entry.decision.kind in RUN_KINDS:
                group.append(entry)
                continue
            if group:
                results.extend(await asyncio.gather(*(self._act(e) for e in group)))
                group = []
            if entry is not None:
                results.append(await self._act(entry))
        now = self.host.clock.time()
        done = [(e.decision.id, r.applied, r.message, r.execution_ids, now)
                for e, r in zip(entries, results, strict=True) if r is not None]  # fmt: skip
        if done:
            try:
                await self.host.store.transact(partial(db.mark_acted, acts=done))
            except (sqlite3.Error, DatabaseReplaced) as exc:
                # Acted but not marked: runs are found by their trigger at the next start.
                log.error("coordinator: marking %d decision(s) acted failed: %s", len(done), exc)
        for entry, result in zip(entries, results, strict=True):
            if result is not None:
                self.host.bus.publish(ev.DecisionActed(
                    at=now, decision_id=entry.decision.id, decision_kind=entry.decision.kind,
                    applied=result.applied, message=result.message,
                    execution_ids=result.execution_ids))  # fmt: skip
        return results

    async def _act(self, entry: _Due) -> Acted | None:
        try:
            return await self._act_one(entry)
        except Exception as exc:  # a bug of ours: this decision fails, the others go on
            log.exception("coordinator: decision %s failed", entry.decision.id)
            return Acted(False, f"internal error: {exc}")

    async def _act_one(self, entry: _Due) -> Acted | None:
        decision, host = entry.decision, self.host
        if host.scheduler.draining:
            return None
        actor = f"{decision.source or 'decision'} (decision {decision.id} via {entry.via})"
        if isinstance(decision, Cancel | Pause | Resume):
            return await self._control(decision, actor)
        if isinstance(decision, Reserve | CancelReservation):
            result = await reserving.act(host, decision, entry.received_at, host.clock.time(),
                                         actor, host.scheduler.book)  # fmt: skip
            return Acted(result.applied, result.message)
        try:
            planned = (entry.planned if entry.planned is not None and entry.config is self.config
                       else starts(self.config, decision, entry.received_at, host.clock.time()))
        except DecisionError as exc:
            return Acted(False, str(exc))
        if isinstance(decision, AnalysisUpdate) and not planned:
            return Acted(True, f"no workflow's on_analysis trigger matches topic "
                         f"{decision.topic!r} with this payload")  # fmt: skip
        started: list[str] = []
        said: list[str] = []
        problems: list[str] = []
        for start in planned:
            if start.error:
                problems.append(start.error)
                continue
            result = await host.run_workflow(
                start.workflow_id, start.params, actor=actor, trigger=f"{db.TRIGGER_PREFIX}"
                f"{decision.id}", priority=start.priority,
                definition=start.definition if start.built else None)  # fmt: skip
            if result.applied and result.execution_id:
                started.append(result.execution_id)
                said.append(f"started {start.workflow_id} as {result.execution_id}")
            elif host.scheduler.draining and not started:
                return None  # stopping: it acts at the next start
            else:
                problems.append(result.message)
        self.started[decision.id] = tuple(started)
        return Acted(bool(started) and not problems, "; ".join(said + problems),
                     tuple(started))  # fmt: skip

    async def _control(self, decision: Cancel | Pause | Resume, actor: str) -> Acted:
        """cancel, pause, resume: of an execution, or of what a decision started (a cancel
        of a decision still waiting for its time withdraws it)."""
        ref, kind = decision.execution, decision.kind
        waiting = self._waiting.get(ref)
        if waiting is not None:
            if kind != "cancel":
                return Acted(False, f"decision {ref} has not acted yet; nothing to {kind}")
            waiting[0].cancel()
            del self._waiting[ref]
            await self.host.store.transact(partial(
                db.mark_cancelled, decision_id=ref, message=f"withdrawn by {decision.id}",
                at=self.host.clock.time()))  # fmt: skip
            return Acted(True, f"withdrew decision {ref} before it acted")
        targets, why = await self._targets(ref)
        if not targets:
            return Acted(False, why)
        command = {"cancel": self.host.cancel, "pause": self.host.pause,
                   "resume": self.host.resume}[kind]  # fmt: skip
        results = [await command(target, decision.task, actor=actor) for target in targets]
        return Acted(all(r.applied for r in results), "; ".join(r.message for r in results),
                     tuple(targets))  # fmt: skip

    async def _targets(self, ref: str) -> tuple[list[str], str]:
        """Execution ids `ref` names: the executions a decision started, an execution id, or
        a unique prefix of one this l3tui knows; else why none."""
        if ref in self.started:
            found = list(self.started[ref])
            return found, f"decision {ref} started no execution"
        recorded = await self.host.store.read(db.decision, ref)
        if recorded is not None:
            self.started[ref] = recorded.executions
            if not recorded.executions and recorded.kind == "reserve":
                return [], (f"decision {ref} made a reservation, not an execution: end it "
                            "with a cancel_reservation decision")  # fmt: skip
            if not recorded.executions:
                return [], f"decision {ref} started no execution ({recorded.message})"
            return list(recorded.executions), ""
        executions = self.host.engine.executions
        if ref in executions:
            return [ref], ""
        matches = [exec_id for exec_id in executions if exec_id.startswith(ref)]
        if len(matches) == 1:
            return matches, ""
        if matches:
            return [], f"{ref!r} is ambiguous: {', '.join(sorted(matches)[:5])}"
        return [], f"no execution or decision {ref!r} in this l3tui"

    # ------------------------------------------------------------------ after a restart

    async def _recover(self) -> None:
        """Decisions recorded but not acted on: act (or wait for their time), unless an
        execution they started shows they had acted before l3tui stopped."""
        left = await self.host.store.read(db.open_decisions)
        if not left:
            return
        found = await self.host.store.read(db.executions_started_by,
                                           min(r.received_at for r in left) - 1)  # fmt: skip
        booked = await self.host.store.read(db.reservations_made, [
            reserving.reservation_id(r.id) for r in left if r.kind == "reserve"])  # fmt: skip
        already: list[tuple[str, bool, str, Sequence[str], float]] = []
        due: list[_Due] = []
        now = self.host.clock.time()
        for record in left:
            if record.id in found:
                ids = found[record.id]
                self.started[record.id] = tuple(ids)
                already.append((record.id, True, "acted before l3tui stopped: started "
                                + ", ".join(ids), ids, now))  # fmt: skip
                continue
            if reserving.reservation_id(record.id) in booked:  # booked, not marked: not twice
                already.append((record.id, True, "acted before l3tui stopped: reserved "
                                + reserving.reservation_id(record.id), (), now))  # fmt: skip
                continue
            try:
                decision = validate_decision(json.loads(record.body))
            except (DecisionError, ValueError) as exc:
                already.append((record.id, False, f"could not be read back: {exc}", (), now))
                continue
            entry = _Due(decision, record.received_at, record.via)
            if record.not_before is not None and record.not_before > now:
                self._arm(entry, record.not_before)
            else:
                due.append(entry)
        if already:
            await self.host.store.transact(partial(db.mark_acted, acts=already))
        if due:
            log.info("coordinator: %d decision(s) recorded before a stop act now", len(due))
            async with self._lock:
                await self._act_all(due)

    # ------------------------------------------------------------------ the inbox

    async def _inbox_loop(self) -> None:
        assert self.watcher is not None
        watcher = self.watcher
        keep_days = self.config.scheduling_file.events.inbox.keep_days
        last_prune = 0.0
        delay = 0.5
        while True:
            ready = await watcher.wait()
            if self.host.scheduler.draining:
                continue
            try:
                # Names inotify announced stay ready until taken, and more arrive meanwhile.
                while await self._inbox_round(ready):
                    ready |= watcher.take_ready()
                delay = 0.5
            except (sqlite3.Error, DatabaseReplaced, OSError) as exc:
                # Nothing acted on what could not be recorded: the files stay claimed and
                # are taken again (first) next time.
                log.error("coordinator: inbox round failed (%s); retrying in %.1fs", exc, delay)
                self.host.bus.publish(ev.SystemNotice(
                    at=self.host.clock.time(), topic="inbox", severity="error",
                    message=f"decisions in the inbox wait: {exc}"))  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                watcher.poke()
            if time.monotonic() - last_prune > PRUNE_EVERY_S:
                last_prune = time.monotonic()
                removed = await asyncio.to_thread(self.inbox.prune, keep_days)
                if removed:
                    log.info("inbox: removed %d handled file(s) older than %g days", removed,
                             keep_days)  # fmt: skip
            if watcher.lost:
                self._rewatch(watcher)

    def _rewatch(self, watcher: Watcher) -> None:
        """inotify lost the directory (moved away, deleted): make it again and watch it."""
        try:
            self.inbox.close()
            self.inbox.open()
        except OSError as exc:
            log.warning("inbox: %s: %s", self.inbox.root, exc)
            return
        watcher.close()
        watcher.start()

    async def _inbox_round(self, ready: set[str]) -> bool:
        """Take up to BATCH files (leftovers of a previous round first), record and act on
        their decisions, file them. True when there may be more."""
        taken = await asyncio.to_thread(self._take, ready)
        if not taken:
            return False
        ready.difference_update(item.file.original for item in taken if item.file is not None)
        outcomes = await self.intake(taken)
        await asyncio.to_thread(self._file, taken, outcomes)
        return len(taken) >= BATCH

    def _take(self, ready: set[str]) -> list[Incoming]:
        """(thread) Claim, read and parse the next files."""
        claimed = self.inbox.claimed_left()[:BATCH]
        if len(claimed) < BATCH:
            for name in self.inbox.candidates(ready)[: BATCH - len(claimed)]:
                item = self.inbox.claim(name)
                if item is not None:
                    claimed.append(item)
        out: list[Incoming] = []
        for item in claimed:
            read = self.inbox.read(item)
            via = f"inbox:{display_name(item.original)}"
            if read.error is not None or read.data is None:
                out.append(Incoming(None, read.error or DecisionError("empty"), via, item))
                continue
            try:
                out.append(Incoming(parse_decision(read.data), None, via, item))
            except DecisionError as exc:
                out.append(Incoming(None, exc, via, item))
        return out

    def _file(self, taken: list[Incoming], outcomes: list[Outcome]) -> None:
        """(thread) processed/ or rejected/ (with NAME.error.json)."""
        for item, outcome in zip(taken, outcomes, strict=True):
            if item.file is None:
                continue
            error = None
            if outcome.status == "rejected":
                error = {"file": display_name(item.file.original),
                         "decision_id": outcome.decision_id, "rejected_at": _stamp(time.time()),
                         "reason": outcome.message, "errors": outcome.errors}  # fmt: skip
            try:
                self.inbox.finish(item.file, error)
            except OSError as exc:
                log.error("inbox: cannot file %s: %s", display_name(item.file.original), exc)


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
