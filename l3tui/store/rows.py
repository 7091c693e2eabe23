"""Turns a batch of events into the rows and updates one transaction writes: inserts in
dependency order, per-row updates coalesced (a task that changed state five times in a batch
is updated once), resource samples folded into time buckets, audit entries collected.

Pure and synchronous: no I/O, so a batch that failed to commit can be prepared again.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import attrgetter
from typing import Any

from l3tui.engine import events as ev
from l3tui.store.audit import AUDITED, AuditEntry, entries_for

METRIC_BUCKET_S = 30.0
"""Resource samples are kept as one avg/max/min row per metric per this many seconds."""
BLOCKED_BUCKET_S = 3600.0
"""Time tasks waited, by cause, is kept per hour (upgrade advice rests on the last day)."""
SAMPLE_KEYS = ("cpu_usage", "memory_usage", "swap_usage", "disk_usage", "load_avg",
               "disk_iops", "net_in", "net_out", "net_connections", "busy_while_queued",
               "queued_interval_s")  # fmt: skip
# Kept in their own tables (or nowhere) rather than in `events`.
_NOT_IN_EVENTS = (ev.ResourceSampled, ev.TaskOutput)
_SKIP_FIELDS = {"at", "definition"}
DERIVED = {"execution_created": "tasks", "execution_started": "waiting"}
"""A field of these kinds that their `events` row leaves out: the task list, and the tasks
waiting at start with their reasons, 1,000 pairs each for a 1,000-task run, whose JSON was
most of the writer's Python work in a creation commit (which stands before the first task
runs). Readers derive them (`queries`): the tasks from `task_runs` (id, name, by position),
the waiting ones from the stored definition (each task with dependencies, "waiting on" them,
as the engine says it). Rows written before this have them, and are read as they are."""
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_FIELDS: dict[type[ev.Event], tuple[str, ...]] = {}

COMPACT: dict[str, tuple[str, ...]] = {
    "task_state": ("execution_id", "task_id", "state", "previous", "attempt", "reason"),
    "task_started": ("execution_id", "task_id", "attempt", "pid", "pgid", "proc_start",
                     "log_path", "command", "wait_s"),
    "task_finished": ("execution_id", "task_id", "state", "attempt", "exit_code", "duration_s",
                      "wait_s", "reason", "peak_cpu_pct", "peak_rss", "avg_cpu_pct", "avg_rss",
                      "cpu_s", "declared_cpu", "declared_memory_mb"),
}  # fmt: skip
"""The kinds most events are (three per task), stored as a JSON array of these fields rather
than an object: a third of the writer's work per event was building and encoding the object.
A stored layout never changes: a field added to one of these events is appended here (rows
written before it simply lack it, as an object written before it would)."""
_COMPACT_GET = {ev.EVENT_TYPES[kind]: attrgetter(*names) for kind, names in COMPACT.items()}

PACK_KIND = "task_events"
"""The kind of a row holding a run of task events (see `Pack`); never an event's kind."""
PACKED_KINDS = tuple(COMPACT)
"""A packed event's kind is `PACKED_KINDS[int(code)]`, its code a digit: a stored code
never changes (a new packed kind is appended)."""
PACK_LEAST = 16
"""Fewer task events in a run are stored a row each: a run broken by other events every few
events (process attempts' `attempt_opened`, task metrics) gains nothing from a pack."""
PACK_MOST = 1000
"""Events per pack at most: a reader looking for sequence numbers below `before` starts its
search this far above it."""
_PACK_CODE = {ev.EVENT_TYPES[kind]: (str(i), i) for i, kind in enumerate(PACKED_KINDS)}
_SWAP = sys.byteorder != "little"
# The C encoder made once (`_encode` makes one per call): no circular check (flat values).
_chunks = (c_make_encoder(None, str, encode_basestring, None, ":", ",", False, False, True)
           if c_make_encoder is not None else None)  # fmt: skip


def _encode_array(values: Sequence[Any] | dict[str, Any]) -> str:
    """`values` (or an object of flat values) as `_encode` would, without making an
    encoder per call (~1.5 us of every event stored as an object)."""
    return "".join(_chunks(values, 0)) if _chunks is not None else _encode(values)


def event_json(event: ev.Event) -> str:
    """The event's fields as compact JSON (the time and kind have their own columns): an
    array of the `COMPACT` fields for the task events, an object for the others."""
    cls = type(event)
    get = _COMPACT_GET.get(cls)
    if get is not None:
        return _encode_array(get(event))
    names = _FIELDS.get(cls)
    if names is None:
        derived = DERIVED.get(cls.kind)
        names = _FIELDS[cls] = tuple(
            name for name in cls.__dataclass_fields__
            if name not in _SKIP_FIELDS and name != derived
        )  # fmt: skip
    return _encode_array({name: getattr(event, name) for name in names})


_COMMANDS: dict[tuple[str, ...], str] = {}
"""Commands encoded before: most attempts run one of a few (every no-op's is `noop`)."""


def _command(command: tuple[str, ...]) -> str:
    text = _COMMANDS.get(command)
    if text is None:
        if len(_COMMANDS) >= 4096:
            _COMMANDS.clear()
        text = _COMMANDS[command] = _encode_array(command) if command else "[]"
    return text


def event_fields(kind: str, data: str) -> dict[str, Any]:
    """A stored event's fields as `event_json` wrote them, either form, as the object form
    reads: `kind` first, then the fields in their declared order."""
    decoded = json.loads(data)
    if isinstance(decoded, list):
        fields: dict[str, Any] = {"kind": kind}
        fields.update(zip(COMPACT.get(kind, ()), decoded, strict=False))  # older: shorter
        return fields
    return decoded if isinstance(decoded, dict) else {"data": decoded}


class Pack:
    """Consecutive task events of one execution in a batch (PACK_LEAST to PACK_MOST of them,
    with no other stored event between them), stored as one `events` row: its
    id is the sequence number of the last of its `n` events, which have the ones before it
    (id - n + 1 .. id); `at` is the newest time (what retention and recovery look at).
    `data` is a JSON array: the events' kind codes (a digit each, in order), then for each
    packed kind its events' `COMPACT` fields by column, a column either the list of its
    values or null when they are all floats: those are in `times` (float64, little-endian)
    after the events' times, column after column. Three rows per task cost the writer ~5 us
    per task in SQLite (and a switch of the interpreter lock per row while the engine
    runs), their JSON ~2 us in Python (mostly the shortest repr of each float)."""

    __slots__ = ("by_kind", "codes", "execution_id", "times")

    def __init__(self, execution_id: str, items: list[tuple[Any, ...]]) -> None:
        """`items`: (at, event class, COMPACT values) of each event, in order."""
        self.execution_id = execution_id
        codes = _PACK_CODE
        by_kind: tuple[list[tuple[Any, ...]], ...] = tuple([] for _ in PACKED_KINDS)
        marks: list[str] = []
        for _, cls, values in items:
            code, index = codes[cls]
            marks.append(code)
            by_kind[index].append(values)
        self.codes = "".join(marks)
        self.by_kind = by_kind
        self.times = array("d", [item[0] for item in items])

    def row(self) -> tuple[Any, ...]:
        """(at, kind, execution_id, data, n, times): the row `writer.apply` inserts."""
        blob = array("d", self.times)
        parts: list[Any] = [self.codes]
        for values in self.by_kind:
            columns: list[tuple[Any, ...] | None] = []
            for column in zip(*values, strict=True):
                if set(map(type, column)) == _FLOATS:
                    blob.extend(column)
                    columns.append(None)
                else:
                    columns.append(column)
            parts.append(columns)
        if _SWAP:
            blob.byteswap()
        return (max(self.times), PACK_KIND, self.execution_id, _encode_array(parts),
                len(self.codes), blob.tobytes())  # fmt: skip


_FLOATS = {float}


def _end_run(rows: list[Any], start: int, execution_id: str) -> None:
    """The task events of one execution at the end of `rows` (from `start`, raw): one Pack
    when there are PACK_LEAST or more, else a row each."""
    if len(rows) - start >= PACK_LEAST:
        rows[start:] = [Pack(execution_id, rows[start:])]
        return
    for i in range(start, len(rows)):
        at, cls, values = rows[i]
        rows[i] = (at, cls.kind, execution_id, _encode_array(values))


def unpack(last: int, n: int, data: str, times: bytes
           ) -> Iterator[tuple[int, float, str, dict[str, Any]]]:  # fmt: skip
    """The events of a pack row: (sequence number, at, kind, fields as `event_fields`
    gives them)."""
    decoded = json.loads(data)
    codes = decoded[0]
    blob = array("d")
    blob.frombytes(times)
    if _SWAP:
        blob.byteswap()
    at = len(codes)
    rows: list[Iterator[tuple[Any, ...]]] = []
    for code, columns in enumerate(decoded[1:]):
        count = codes.count(str(code))
        found: list[Any] = []
        for column in columns:
            if column is None:
                found.append(blob[at : at + count])
                at += count
            else:
                found.append(column)
        rows.append(zip(*found, strict=True) if found else iter(()))
    seq = last - n + 1
    for i, code in enumerate(codes):
        kind = PACKED_KINDS[int(code)]
        fields: dict[str, Any] = {"kind": kind}
        fields.update(zip(COMPACT[kind], next(rows[int(code)]), strict=False))
        yield seq + i, blob[i], kind, fields


Updates = dict[Any, dict[str, Any]]


@dataclass(slots=True)
class Batch:
    """Everything one commit writes."""

    definitions: list[tuple[Any, ...]] = field(default_factory=list)
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    created: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, str]]] = field(
        default_factory=dict)
    """execution id -> (its tasks, the reason of each that waits) of the executions created
    in this batch: their task rows are inserted from these tuples (a dict per task row cost
    ~1 us of each task of a creation commit, which stands before the first task runs). Later
    changes to these tasks in the batch are updates applied after the inserts."""
    task_runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Task rows inserted with these columns; their later changes in the batch fold into
    the insert."""
    attempts: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    """Attempts started in this batch; their later changes in the batch fold into the insert
    (unless an earlier change to the same attempt is pending: it is applied after inserts)."""
    opened: list[tuple[Any, ...]] = field(default_factory=list)
    """Attempts about to spawn a process (state `starting`, no pid yet)."""
    exec_updates: Updates = field(default_factory=dict)
    task_updates: Updates = field(default_factory=dict)
    attempt_updates: Updates = field(default_factory=dict)
    events: list[tuple[Any, ...] | Pack] = field(default_factory=list)
    """Rows of `events` in order: (at, kind, execution_id, data), or a Pack."""
    task_metrics: list[tuple[Any, ...]] = field(default_factory=list)
    alerts: list[tuple[Any, ...]] = field(default_factory=list)
    schedules: list[tuple[Any, ...]] = field(default_factory=list)
    samples: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    blocked: dict[tuple[str, float], float] = field(default_factory=dict)
    reservations: list[tuple[Any, ...]] = field(default_factory=list)
    """New reservations (`made`) in order."""
    reservation_ends: list[tuple[Any, ...]] = field(default_factory=list)
    """(state, at, actor, id) of reservations started, ended or cancelled, in order."""
    findings: list[tuple[bool, tuple[Any, ...]]] = field(default_factory=list)
    """(raised, row) of bottleneck findings and upgrade advice, in event order."""
    audit: list[AuditEntry] = field(default_factory=list)
    recorded: Container[str] = ()
    """Executions whose creation an earlier batch committed (their task rows exist)."""
    was_opened: Container[tuple[str, str, int]] = ()
    """Attempts whose `AttemptOpened` an earlier batch committed (their rows exist, unless
    their task's did not)."""


def _task(b: Batch, key: tuple[str, str], values: dict[str, Any]) -> None:
    """Three times per task: `_merge` inlined."""
    current = b.task_runs.get(key)
    if current is None:
        current = b.task_updates.get(key)
        if current is None:
            b.task_updates[key] = values
            return
    current.update(values)


def _attempt(b: Batch, key: tuple[str, str, int], values: dict[str, Any]) -> None:
    created = b.attempts.get(key)
    if created is not None and key not in b.attempt_updates:
        created.update(values)
    else:
        _merge(b.attempt_updates, key, values)


def _forget_oldest(keys: dict[Any, None]) -> None:
    if len(keys) > 10_000:
        for key in list(keys)[:5_000]:
            del keys[key]


def _merge(updates: Updates, key: Any, values: dict[str, Any]) -> None:
    current = updates.get(key)
    if current is None:
        updates[key] = values
    else:
        current.update(values)


class BatchBuilder:
    """Remembers what it needs across batches (how each execution was triggered)."""

    def __init__(self, default_actor: str) -> None:
        self.default_actor = default_actor
        self.triggers: dict[str, str] = {}
        self.recorded: dict[str, None] = {}
        """Executions whose creation (and task rows) this writer committed, oldest first."""
        self.opened: dict[tuple[str, str, int], None] = {}
        """Attempts whose `AttemptOpened` this writer committed, oldest first."""

    def committed(self, batch: Batch) -> None:
        """`batch` is on disk: its executions' task rows exist from now on, and its opened
        attempts' rows."""
        recorded = self.recorded
        for row in batch.executions:
            recorded[row[0]] = None
        opened = self.opened
        for row in batch.opened:
            opened[row[0], row[1], row[2]] = None
        _forget_oldest(recorded)
        _forget_oldest(opened)  # attempts that never started in this process

    def build(self, events: Iterable[ev.Event]) -> Batch:
        batch = Batch(recorded=self.recorded, was_opened=self.opened)
        rows = batch.events
        compact, task_events = _COMPACT_GET, _TASK_EVENTS
        run: str | None = None  # the execution of the task events at the end of `rows`
        start = 0
        for event in events:
            cls = type(event)
            get = compact.get(cls)
            if get is not None:  # the three events per task: kept raw until their run ends
                values = get(event)  # execution_id first (COMPACT)
                if run != values[0] or len(rows) - start >= PACK_MOST:
                    if run is not None:
                        _end_run(rows, start, run)
                    run, start = values[0], len(rows)
                rows.append((event.at, cls, values))
            elif not isinstance(event, _NOT_IN_EVENTS):
                if run is not None:
                    _end_run(rows, start, run)
                    run = None
                rows.append((event.at, event.kind, getattr(event, "execution_id", None),
                             event_json(event)))  # fmt: skip
            apply = task_events.get(cls)
            if apply is not None:
                apply(batch, event)
            else:
                self._apply(batch, event)
            if cls in AUDITED:  # most events (task ones) stand for no audit entry
                batch.audit.extend(entries_for(event, self.default_actor, self.triggers))
        if run is not None:
            _end_run(rows, start, run)
        if len(self.triggers) > 10_000:  # executions that never finished in this process
            for key in list(self.triggers)[:5_000]:
                del self.triggers[key]
        return batch

    def _apply(self, b: Batch, e: ev.Event) -> None:
        at = e.at
        if isinstance(e, ev.TaskStateChanged):
            _task_state(b, e)
        elif isinstance(e, ev.TaskFinished):
            _task_finished(b, e)
        elif isinstance(e, ev.AttemptOpened):
            _attempt_opened(b, e)
        elif isinstance(e, ev.TaskStarted):
            _task_started(b, e)
        elif isinstance(e, ev.TaskRetrying):
            _attempt(b, (e.execution_id, e.task_id, e.attempt),
                     {"finished_at": at, "state": e.state, "error": e.error,
                      "exit_code": e.exit_code})  # fmt: skip
        elif isinstance(e, ev.TaskMetric):
            b.task_metrics.append((at, e.execution_id, e.workflow_id, e.task_id, e.name,
                                   e.value))  # fmt: skip
        elif isinstance(e, ev.ResourceSampled):
            waited = e.sample.get("waited")
            if isinstance(waited, dict):
                hour = at - at % BLOCKED_BUCKET_S
                for cause, seconds in waited.items():
                    if isinstance(seconds, int | float) and seconds > 0:
                        key = (str(cause), hour)
                        b.blocked[key] = b.blocked.get(key, 0.0) + float(seconds)
            bucket = at - at % METRIC_BUCKET_S
            for name in SAMPLE_KEYS:
                value = e.sample.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    acc = b.samples.get((name, bucket))
                    v = float(value)
                    if acc is None:
                        b.samples[(name, bucket)] = [v, v, v, 1.0]
                    else:
                        acc[0] += v
                        acc[1] = max(acc[1], v)
                        acc[2] = min(acc[2], v)
                        acc[3] += 1
        elif isinstance(e, ev.ExecutionCreated):
            b.definitions.append((e.definition_hash, e.workflow_id, e.workflow_name,
                                  e.definition, at))  # fmt: skip
            b.executions.append((e.execution_id, e.workflow_id, e.workflow_name,
                                 e.definition_hash, _encode(e.params), e.trigger, e.parent_id,
                                 e.priority, at))  # fmt: skip
            b.created[e.execution_id] = (e.tasks, {})
        elif isinstance(e, ev.ExecutionStarted):
            _merge(b.exec_updates, e.execution_id, {"state": "running", "started_at": at})
            created = b.created.get(e.execution_id)
            if created is not None and not b.task_updates:  # its rows are inserted waiting
                created[1].update(e.waiting)
            else:
                for task_id, reason in e.waiting:
                    _task(b, (e.execution_id, task_id), {"state": "waiting", "reason": reason,
                                                         "attempt": 0})  # fmt: skip
        elif isinstance(e, ev.ExecutionPaused):
            _merge(b.exec_updates, e.execution_id, {"state": "paused"})
        elif isinstance(e, ev.ExecutionResumed):
            _merge(b.exec_updates, e.execution_id, {"state": "running"})
        elif isinstance(e, ev.ExecutionFinished):
            _merge(b.exec_updates, e.execution_id, {"state": e.state, "reason": e.reason,
                   "finished_at": at, "duration_s": e.duration_s})  # fmt: skip
        elif isinstance(e, ev.AlertChanged):
            b.alerts.append((e.alert_id, e.rule, e.severity, e.state, e.message, e.source,
                             at, at, e.key, e.name, e.count, e.snoozed_until,
                             e.message))  # fmt: skip
        elif isinstance(e, ev.ReservationChanged):
            if e.change == "made":
                b.reservations.append((e.reservation_id, e.cpu, e.memory_mb,
                                       _encode([list(p) for p in e.pools]), e.starts_at,
                                       e.ends_at, e.reason, e.actor, e.created_at))  # fmt: skip
            else:
                state = "active" if e.change == "started" else e.change
                ended = None if e.change == "started" else at
                b.reservation_ends.append((state, ended, e.actor if ended else "",
                                           e.reservation_id))  # fmt: skip
        elif isinstance(e, ev.BottleneckChanged):
            if e.active:
                b.findings.append((True, (e.finding, e.severity, e.summary,
                                          _encode(list(e.evidence)), e.suggestion, at, at)))
            else:
                b.findings.append((False, (at, at, e.finding)))
        elif isinstance(e, ev.ScheduleChanged):
            b.schedules.append((e.schedule_id, None, int(e.enabled), None, at))
        elif isinstance(e, ev.ScheduleFired):
            b.schedules.append((e.schedule_id, e.fire_time, None, e.outcome, at))


# The events of every task (and a process's AttemptOpened), found by their class (no
# isinstance chain) in `build`.


def _task_state(b: Batch, e: ev.TaskStateChanged) -> None:
    at = e.at
    values: dict[str, Any] = {"state": e.state, "reason": e.reason, "attempt": e.attempt}
    if e.state == "queued":
        values["queued_at"] = at
    elif e.state == "interrupted":
        values["finished_at"] = at
        if e.attempt:
            _attempt(b, (e.execution_id, e.task_id, e.attempt),
                     {"finished_at": at, "state": e.state, "error": e.reason})
    _task(b, (e.execution_id, e.task_id), values)


def _task_finished(b: Batch, e: ev.TaskFinished) -> None:
    at = e.at
    _task(b, (e.execution_id, e.task_id), {
        "state": e.state, "exit_code": e.exit_code, "duration_s": e.duration_s,
        "wait_s": e.wait_s, "reason": e.reason, "finished_at": at,
        "peak_cpu_pct": e.peak_cpu_pct, "avg_cpu_pct": e.avg_cpu_pct,
        "peak_rss": e.peak_rss, "avg_rss": e.avg_rss, "attempt": e.attempt,
        "cpu_s": e.cpu_s,
    })  # fmt: skip
    if e.attempt:
        _attempt(b, (e.execution_id, e.task_id, e.attempt), {
            "finished_at": at, "state": e.state, "exit_code": e.exit_code,
            "error": e.reason,
        })  # fmt: skip


def _task_started(b: Batch, e: ev.TaskStarted) -> None:
    at = e.at
    started = (e.execution_id, e.task_id, e.attempt)
    if e.pid is None and e.log_path is None and e.pgid is None and e.proc_start is None:
        # In-process: no process and no log. The attempt row's columns left out are NULL
        # (it is inserted whole, replacing any row before it); the task row's are NULL
        # until a first attempt sets them, so only a later attempt clears them.
        b.attempts[started] = {
            "execution_id": e.execution_id, "task_id": e.task_id, "attempt": e.attempt,
            "started_at": at, "wait_s": e.wait_s, "command": _command(e.command),
        }  # fmt: skip
        values = {"state": "running", "reason": "", "started_at": at, "attempt": e.attempt}
        if e.attempt != 1:
            values.update(pid=None, pgid=None, proc_start=None, log_path=None)
        _task(b, (e.execution_id, e.task_id), values)
        return
    if started in b.was_opened and started not in b.attempt_updates:
        # The row AttemptOpened wrote (in an earlier commit; nothing changed it since in
        # this batch) is updated: the columns a start sets, as inserting it again would
        # (~3 us less of SQLite's per process attempt; the attempts_open index untouched).
        b.attempt_updates[started] = {
            "started_at": at, "wait_s": e.wait_s, "pid": e.pid, "pgid": e.pgid,
            "proc_start": e.proc_start, "log_path": e.log_path,
            "command": _command(e.command), "state": "running",
        }  # fmt: skip
    else:
        # Inserted again (replacing what AttemptOpened wrote); what came before it for
        # this attempt in the batch is applied after the inserts, as before.
        b.attempts[started] = {
            "execution_id": e.execution_id, "task_id": e.task_id, "attempt": e.attempt,
            "started_at": at, "wait_s": e.wait_s, "pid": e.pid, "pgid": e.pgid,
            "proc_start": e.proc_start, "log_path": e.log_path,
            "command": _command(e.command),
        }  # fmt: skip
    _task(b, (e.execution_id, e.task_id), {
        "state": "running", "reason": "", "started_at": at, "attempt": e.attempt,
        "pid": e.pid, "pgid": e.pgid, "proc_start": e.proc_start,
        "log_path": e.log_path,
    })  # fmt: skip


def _attempt_opened(b: Batch, e: ev.AttemptOpened) -> None:
    b.opened.append((e.execution_id, e.task_id, e.attempt, e.at, e.wait_s, e.log_path,
                     _command(e.command), e.execution_id, e.task_id))  # fmt: skip
    _task(b, (e.execution_id, e.task_id), {"attempt": e.attempt})


_TASK_EVENTS: dict[type[ev.Event], Callable[[Batch, Any], None]] = {
    ev.TaskStateChanged: _task_state, ev.TaskStarted: _task_started,
    ev.TaskFinished: _task_finished, ev.AttemptOpened: _attempt_opened,
}  # fmt: skip
