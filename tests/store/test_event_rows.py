"""How task events and attempts are written: the compact stored form of the three task events
reads back exactly as the object form did (`l3tui events`, `--json`), and an attempt's
changes in the batch that started it fold into its insert without losing an earlier one.
Real SQLite files through the real Store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from pathlib import Path

from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.store import queries
from l3tui.store.rows import COMPACT, PACK_MOST
from l3tui.store.sqlite import Store

EXEC = "20260101-000000-abcd"


def test_compact_layouts_name_every_field_in_declared_order() -> None:
    # A field added to one of these events must be appended to its stored layout, or the
    # writer would drop it; the test says so the day it happens.
    for kind, names in COMPACT.items():
        cls = ev.EVENT_TYPES[kind]
        declared = tuple(f.name for f in dataclasses.fields(cls) if f.name != "at")
        assert names == declared, kind


def _object_form(event: ev.Event) -> dict[str, object]:
    """What the store wrote for every event before: an object of every field, in order."""
    names = [n for n in type(event).__dataclass_fields__ if n not in ("at", "definition")]
    return json.loads(json.dumps({n: getattr(event, n) for n in names}, ensure_ascii=False,
                                 default=str))  # fmt: skip


async def _write(state_dir: Path, events: list[ev.Event]) -> None:
    bus = EventBus()
    store = Store(state_dir, actor="test")
    await store.open(bus, recover=False)
    try:
        for event in events:
            bus.publish(event)
        await bus.durable()
    finally:
        await store.close()


def _created(*task_ids: str) -> list[ev.Event]:
    return [
        ev.ExecutionCreated(at=1.0, execution_id=EXEC, workflow_id="w", workflow_name="و",
                            definition_hash="h", definition="{}", params={}, trigger="manual",
                            parent_id=None, priority=5,
                            tasks=tuple((t, t) for t in task_ids)),
        ev.ExecutionStarted(at=1.0, execution_id=EXEC, waiting=()),
    ]  # fmt: skip


async def test_task_events_read_back_as_their_objects(tmp_path: Path) -> None:
    task = ev.TaskStateChanged(at=2.0, execution_id=EXEC, task_id="مهمة", state="queued",
                               previous="waiting", attempt=0, reason='a "quoted"\nreason')
    started = ev.TaskStarted(at=3.0, execution_id=EXEC, task_id="مهمة", attempt=1, pid=41,
                             pgid=41, proc_start=12345.67, log_path="/tmp/x y/مهمة.1.log",
                             command=("sh", "-c", "echo 'ok'"), wait_s=0.25)  # fmt: skip
    finished = ev.TaskFinished(at=4.5, execution_id=EXEC, task_id="مهمة", state="failed",
                               attempt=1, exit_code=None, duration_s=1.5, wait_s=0.25,
                               reason="killed", peak_cpu_pct=12.5, peak_rss=2**40,
                               avg_cpu_pct=float("nan"), cpu_s=0.1)  # fmt: skip
    await _write(tmp_path, [*_created("مهمة"), task, started, finished])
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        rows = queries.events_after(conn, 0)
        per_execution = queries.execution_events(conn, EXEC)
    finally:
        conn.close()
    by_kind = {row["kind"]: row for row in rows}
    for event in (task, started, finished):
        row = by_kind[event.kind]
        expected = {**_object_form(event), "seq": row["seq"], "at": event.at, "kind": event.kind}
        # Same fields, values and order as the object form gave (`--json` prints in order).
        assert json.dumps(list(row.items())) == json.dumps(list(expected.items()))
    assert [r["kind"] for r in per_execution] == [r["kind"] for r in rows
                                                  if r.get("execution_id") == EXEC]
    assert {r["kind"]: r["task_id"] for r in per_execution if "task_id" in r} == {
        "task_state": "مهمة", "task_started": "مهمة", "task_finished": "مهمة"}


async def test_an_attempt_started_and_ended_in_one_batch_keeps_every_change(
    tmp_path: Path,
) -> None:
    one = ev.TaskStarted(at=2.0, execution_id=EXEC, task_id="a", attempt=1, pid=None,
                         pgid=None, proc_start=None, log_path=None, command=(), wait_s=0.0)
    retried = ev.TaskRetrying(at=2.5, execution_id=EXEC, task_id="a", attempt=1,
                              delay_s=0.0, error="boom", exit_code=1,
                              state="failed")  # fmt: skip
    two = dataclasses.replace(one, at=3.0, attempt=2, command=("true",))
    done = ev.TaskFinished(at=3.5, execution_id=EXEC, task_id="a", state="succeeded",
                           attempt=2, exit_code=0, duration_s=0.5, wait_s=0.0, reason="")
    # `b`: an attempt changed before its TaskStarted in the same batch, and after it: the
    # start replaces the opened row, and the change after it wins over the one before.
    opened = ev.AttemptOpened(at=2.0, execution_id=EXEC, task_id="b", attempt=1,
                              log_path="/l", command=("x",), wait_s=0.0)  # fmt: skip
    early = ev.TaskStateChanged(at=2.1, execution_id=EXEC, task_id="b", state="interrupted",
                                previous="running", attempt=1, reason="stopped")  # fmt: skip
    late_start = dataclasses.replace(one, at=2.2, task_id="b", command=("x",))
    late_end = dataclasses.replace(done, at=2.3, task_id="b", attempt=1, exit_code=7,
                                   state="failed", reason="exit 7")  # fmt: skip
    await _write(tmp_path, [*_created("a", "b"), one, retried, two, done, opened, early,
                            late_start, late_end])  # fmt: skip
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        attempts = conn.execute("SELECT task_id, attempt, state, exit_code, error, started_at, "
                                "finished_at, command FROM task_attempts ORDER BY task_id, "
                                "attempt").fetchall()  # fmt: skip
        runs = conn.execute("SELECT task_id, state, attempt, exit_code FROM task_runs "
                            "ORDER BY task_id").fetchall()  # fmt: skip
    finally:
        conn.close()
    assert attempts == [
        ("a", 1, "failed", 1, "boom", 2.0, 2.5, "[]"),
        ("a", 2, "succeeded", 0, "", 3.0, 3.5, '["true"]'),
        ("b", 1, "failed", 7, "exit 7", 2.2, 2.3, '["x"]'),
    ]
    assert runs == [("a", "succeeded", 2, 0), ("b", "failed", 1, 7)]


async def test_an_attempt_without_a_process_clears_the_task_rows_process(tmp_path: Path) -> None:
    # An in-process attempt writes no pid, pgid, start or log: the attempt row's are NULL,
    # and so are the task row's, also when an earlier attempt of the task had a process.
    first = ev.TaskStarted(at=2.0, execution_id=EXEC, task_id="a", attempt=1, pid=41, pgid=41,
                           proc_start=9.5, log_path="/l/a.1.log", command=("x",), wait_s=0.0)
    retried = ev.TaskRetrying(at=2.5, execution_id=EXEC, task_id="a", attempt=1,
                              delay_s=0.0, error="boom", exit_code=1, state="failed")
    second = dataclasses.replace(first, at=3.0, attempt=2, pid=None, pgid=None,
                                 proc_start=None, log_path=None, command=())  # fmt: skip
    only = dataclasses.replace(second, task_id="b", attempt=1)
    await _write(tmp_path, [*_created("a", "b"), first, retried])
    await _write(tmp_path, [second, only])
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        runs = conn.execute("SELECT task_id, state, attempt, pid, pgid, proc_start, log_path, "
                            "started_at FROM task_runs ORDER BY task_id").fetchall()
        attempts = conn.execute("SELECT task_id, attempt, pid, pgid, proc_start, log_path, "
                                "command FROM task_attempts ORDER BY task_id, attempt"
                                ).fetchall()  # fmt: skip
    finally:
        conn.close()
    assert runs == [("a", "running", 2, None, None, None, None, 3.0),
                    ("b", "running", 1, None, None, None, None, 3.0)]  # fmt: skip
    assert attempts == [("a", 1, 41, 41, 9.5, "/l/a.1.log", '["x"]'),
                        ("a", 2, None, None, None, None, "[]"),
                        ("b", 1, None, None, None, None, "[]")]  # fmt: skip


def _stream(exec_ids: tuple[str, ...], tasks: int, start: float = 10.0) -> list[ev.Event]:
    """Task events of several executions, interleaved with events stored as plain rows and
    events not stored at all; times that are not in order (a pack keeps each)."""
    out: list[ev.Event] = []
    at = start
    for i in range(tasks):
        # Runs of 400 tasks of one execution (more than a pack holds), some one by one.
        for exec_id in exec_ids if i % 400 > 390 else [exec_ids[i // 400 % len(exec_ids)]]:
            t = f"t{i % 5}"
            at += 0.001 * (1 + i % 3)
            out.append(ev.TaskStateChanged(at=at, execution_id=exec_id, task_id=t,
                                           state="queued", previous="waiting", attempt=0,
                                           reason=f"r{i}"))  # fmt: skip
            out.append(ev.TaskStarted(at=at + 0.0001, execution_id=exec_id, task_id=t,
                                      attempt=1 + i % 2, pid=None if i % 2 else 100 + i,
                                      pgid=None, proc_start=None, log_path=None,
                                      command=("noop",), wait_s=1 / (i + 3)))  # fmt: skip
            out.append(ev.TaskFinished(at=at - 0.5, execution_id=exec_id, task_id=t,
                                       state="succeeded", attempt=1, exit_code=0,
                                       duration_s=i / 7 if i % 3 else i // 7,
                                       wait_s=(-0.0, float("inf"), 1e-300)[i % 3],
                                       reason=""))  # fmt: skip
        if i % 400 == 395:
            out.append(ev.OperatorAction(at=at, action="execution.pause",
                                         execution_id=exec_ids[-1], task_id=None, applied=True,
                                         detail=f"d{i}", actor="test"))  # fmt: skip
        if i % 100 == 50:
            out.append(ev.ResourceSampled(at=at, sample={"cpu_usage": 1.0}))
    return out


def _expected(events: list[ev.Event]) -> list[dict[str, object]]:
    """What the readers gave when every event was a row: kind, fields, `at`, in order."""
    return [{**_object_form(e), "at": e.at, "kind": e.kind} for e in events
            if not isinstance(e, ev.ResourceSampled)]  # fmt: skip


async def test_packed_task_events_read_back_one_by_one_with_their_sequence_numbers(
    tmp_path: Path,
) -> None:
    # Task events are stored packed (a row per run of one execution's task events in a
    # commit, at most PACK_MOST each); every reader still sees one event per sequence number,
    # in order, with the fields and time it had: `l3tui events` with --since and paging
    # back, an execution's events by kind and limit, retention and recovery's newest time.
    other = "20260101-000000-ffff"
    created = [*_created("t0", "t1", "t2", "t3", "t4"),
               *[dataclasses.replace(e, execution_id=other) for e in _created(
                   "t0", "t1", "t2", "t3", "t4")]]  # fmt: skip
    stream = _stream((EXEC, other), 900)
    await _write(tmp_path, [*created, *stream[:2000]])
    await _write(tmp_path, stream[2000:])
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        low, high = queries.event_bounds(conn)
        stored = queries.events_after(conn, 0, 100_000)
        packs = conn.execute("SELECT count(*), max(n) FROM events WHERE kind = 'task_events'"
                             ).fetchone()  # fmt: skip
        mine = [r for r in stored if r["kind"] not in ("execution_created", "execution_started",
                                                       "system_notice")]  # fmt: skip
        got = [{k: v for k, v in r.items() if k != "seq"} for r in mine]
        assert json.dumps(got) == json.dumps(_expected(stream))  # 1 and 1.0 told apart
        assert [r["seq"] for r in stored] == list(range(low, high + 1))
        assert packs[0] < len(stream) // 50 and packs[1] == PACK_MOST
        for after, before, limit in ((0, None, 5000), (low + 2, None, 17), (high - 3, None, 9),
                                     (high, None, 5), (low, low + 1500, 5000),
                                     (low + 999, low + 1003, 2), (low + 500, low + 2700, 800),
                                     (low - 10, low + 3, 100), (low + 40, low + 40, 10)):
            want = [r for r in stored if r["seq"] > after
                    and (before is None or r["seq"] < before)][:limit]  # fmt: skip
            assert queries.events_after(conn, after, limit, before=before) == want
        for exec_id in (EXEC, other):
            rows = [{**r, "id": r["seq"]} for r in stored if r.get("execution_id") == exec_id]
            for row in rows:
                del row["seq"]
            assert queries.execution_events(conn, exec_id) == rows
            started = [r for r in rows if r["kind"] in ("task_started", "operator_action")]
            assert queries.execution_events(conn, exec_id, ("task_started", "operator_action"),
                                            limit=40) == started[:40]  # fmt: skip
            assert queries.execution_events(conn, exec_id, ("execution_created",)) == rows[:1]
            (newest,) = conn.execute("SELECT max(at) FROM events WHERE execution_id = ?",
                                     (exec_id,)).fetchone()  # fmt: skip
            assert newest == max(r["at"] for r in rows)  # what recovery reads
    finally:
        conn.close()


async def test_events_stored_before_packing_read_back_as_before(tmp_path: Path) -> None:
    # A database of the version before packs: its rows are read as they were, and the
    # packed events written after them continue their sequence numbers.
    from l3tui.store.rows import event_json
    from l3tui.store.schema import apply_migrations

    conn = sqlite3.connect(tmp_path / "l3tui.db", isolation_level=None)
    apply_migrations(conn, 0, 6)
    now = time.time()  # recent: retention keeps them without their execution
    old = _stream((EXEC,), 20, now)
    conn.executemany("INSERT INTO events (at, kind, execution_id, data) VALUES (?, ?, ?, ?)",
                     [(e.at, e.kind, getattr(e, "execution_id", None), event_json(e))
                      for e in old if not isinstance(e, ev.ResourceSampled)])  # fmt: skip
    conn.close()
    new = _stream((EXEC,), 30, now + 1)
    await _write(tmp_path, new)
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        low, high = queries.event_bounds(conn)
        stored = queries.events_after(conn, 0, 100_000)
    finally:
        conn.close()
    mine = [{k: v for k, v in r.items() if k != "seq"} for r in stored
            if r["kind"] != "system_notice"]  # fmt: skip
    assert json.dumps(mine) == json.dumps(_expected(old) + _expected(new))
    assert low == 1 and [r["seq"] for r in stored] == list(range(1, high + 1))


async def test_attempts_of_executions_created_here_and_elsewhere_are_written(
    tmp_path: Path,
) -> None:
    # An attempt of an execution this writer committed the creation of is inserted without
    # looking for its task row first; one of an execution it did not create only if its task
    # row exists (an unknown one is skipped, not a batch rejected).
    started = ev.TaskStarted(at=2.0, execution_id=EXEC, task_id="a", attempt=1, pid=None,
                             pgid=None, proc_start=None, log_path=None, command=(),
                             wait_s=0.0)  # fmt: skip
    unknown = dataclasses.replace(started, execution_id="20260101-000000-0000")
    bus = EventBus()
    store = Store(tmp_path, actor="test")
    await store.open(bus, recover=False)
    try:
        for event in _created("a", "b"):
            bus.publish(event)
        await bus.durable()
        bus.publish(started)
        bus.publish(unknown)
        await bus.durable()
    finally:
        await store.close()
    await _write(tmp_path, [dataclasses.replace(started, task_id="b"),
                            dataclasses.replace(unknown, task_id="b")])  # fmt: skip
    assert store.unrecorded == 0
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        attempts = conn.execute("SELECT execution_id, task_id, attempt FROM task_attempts "
                                "ORDER BY task_id").fetchall()  # fmt: skip
    finally:
        conn.close()
    assert attempts == [(EXEC, "a", 1), (EXEC, "b", 1)]


def _task_rows(state_dir: Path) -> dict[str, tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT task_id, name, position, state, reason, attempt, queued_at "
                            "FROM task_runs WHERE execution_id = ?", (EXEC,)).fetchall()
    finally:
        conn.close()
    return {row[0]: tuple(row[1:]) for row in rows}


async def test_task_rows_of_an_execution_created_and_started_in_one_batch(tmp_path: Path) -> None:
    """A creation commit inserts each task row pending or waiting with its reason; a change
    to one of them later in the same batch (a held batch while the disk was full: the start
    and what followed it together) still wins, in order."""
    created = _created("a", "b", "c")
    started = ev.ExecutionStarted(at=1.0, execution_id=EXEC,
                                  waiting=(("b", "waiting on a"), ("c", "waiting on b")))
    queued = ev.TaskStateChanged(at=2.0, execution_id=EXEC, task_id="b", state="queued",
                                 previous="waiting", attempt=0, reason="")  # fmt: skip
    await _write(tmp_path, [created[0], started, queued])
    assert _task_rows(tmp_path) == {
        "a": ("a", 0, "pending", "", 0, None),
        "b": ("b", 1, "queued", "", 0, 2.0),
        "c": ("c", 2, "waiting", "waiting on b", 0, None),
    }


async def test_task_rows_of_an_execution_started_after_its_creation_commit(
    tmp_path: Path,
) -> None:
    await _write(tmp_path, [_created("a", "b")[0]])
    await _write(tmp_path, [ev.ExecutionStarted(at=1.0, execution_id=EXEC,
                                                waiting=(("b", "waiting on a"),))])  # fmt: skip
    assert _task_rows(tmp_path) == {
        "a": ("a", 0, "pending", "", 0, None),
        "b": ("b", 1, "waiting", "waiting on a", 0, None),
    }


async def test_a_process_attempt_opened_then_started_in_later_commits(tmp_path: Path) -> None:
    # `a`: opened in one commit, started in the next (the opened row is updated), finished in
    # a third. `b`: opened, then changed before its start in the batch that starts it (the
    # start replaces the row, the change before it applied after, as in one batch). Either
    # way the rows are what inserting the whole started row gave.
    bus = EventBus()
    store = Store(tmp_path, actor="test")
    await store.open(bus, recover=False)
    log_a, log_b = "/tmp/x y/مهمة.1.log", "/l/b.1.log"
    try:
        for group in (
            [*_created("a", "b"),
             ev.AttemptOpened(2.0, EXEC, "a", 1, log_a, ("sh", "-c", "echo 'ok'"), 0.25),
             ev.AttemptOpened(2.0, EXEC, "b", 1, log_b, ("x",), 0.0)],
            [ev.TaskStarted(3.0, EXEC, "a", 1, 41, 41, 12345.67, log_a,
                            ("sh", "-c", "echo 'ok'"), 0.25),
             ev.TaskStateChanged(3.1, EXEC, "b", "interrupted", "running", 1, "stopped"),
             ev.TaskStarted(3.2, EXEC, "b", 1, 42, 42, 9.5, log_b, ("x",), 0.0)],
            [ev.TaskFinished(4.5, EXEC, "a", "failed", 1, 3, 1.5, 0.25, "exit 3")],
        ):  # fmt: skip
            for event in group:
                bus.publish(event)
            async with asyncio.timeout(30):
                await bus.durable()
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "l3tui.db")
    try:
        attempts = conn.execute(
            "SELECT task_id, attempt, state, started_at, finished_at, exit_code, error, wait_s, "
            "pid, pgid, proc_start, log_path, command FROM task_attempts ORDER BY task_id"
        ).fetchall()
        still_open = conn.execute("SELECT task_id FROM task_attempts INDEXED BY attempts_open "
                                  "WHERE execution_id = ? AND finished_at IS NULL",
                                  (EXEC,)).fetchall()  # fmt: skip
        runs = conn.execute("SELECT task_id, state, attempt, pid, log_path FROM task_runs "
                            "ORDER BY task_id").fetchall()  # fmt: skip
    finally:
        conn.close()
    assert attempts == [
        ("a", 1, "failed", 3.0, 4.5, 3, "exit 3", 0.25, 41, 41, 12345.67, log_a,
         '["sh","-c","echo \'ok\'"]'),
        ("b", 1, "interrupted", 3.2, 3.1, None, "stopped", 0.0, 42, 42, 9.5, log_b, '["x"]'),
    ]  # fmt: skip
    assert still_open == []
    assert runs == [("a", "failed", 1, 41, log_a), ("b", "running", 1, 42, log_b)]


DIAMOND = """
workflows:
  diamond:
    name: معين
    tasks:
      - {id: a, name: "البداية", action: noop}
      - {id: b, action: noop, dependencies: [a]}
      - {id: c, name: "ثالث", action: noop, dependencies: [a]}
      - {id: d, action: noop, dependencies: [c, b]}
"""


async def test_a_creation_row_leaves_out_its_task_lists_and_reads_back_whole(
    make_config, runtime_for, state_dir: Path
) -> None:
    """The creation's task list and its start's waiting tasks are not in their `events`
    rows (task_runs and the stored definition hold them: their JSON was most of the
    writer's Python work before a large run's first task); every reader still gets both
    events as the engine published them, fields and order (`l3tui events --json`)."""
    published: list[ev.Event] = []
    async with runtime_for(make_config(DIAMOND)) as rt:
        rt.bus.add_listener(published.append, (ev.ExecutionCreated, ev.ExecutionStarted))
        result = await rt.run_workflow("diamond")
        assert result.execution_id is not None, result.message
        assert await rt.wait(result.execution_id) == "succeeded"
    created, started = published
    assert started.waiting == (("b", "waiting on a"), ("c", "waiting on a"),
                               ("d", "waiting on c, b"))  # fmt: skip
    conn = sqlite3.connect(state_dir / "l3tui.db")
    try:
        data = dict(conn.execute("SELECT kind, data FROM events WHERE kind IN "
                                 "('execution_created', 'execution_started')").fetchall())
        everything = queries.events_after(conn, 0)
        mine = queries.execution_events(conn, created.execution_id)
    finally:
        conn.close()
    assert "tasks" not in json.loads(data["execution_created"])
    assert "waiting" not in json.loads(data["execution_started"])
    for rows, seq in ((everything, "seq"), (mine, "id")):
        for event in (created, started):
            [row] = [r for r in rows if r["kind"] == event.kind]
            expected = {**_object_form(event), seq: row[seq], "at": event.at,
                        "kind": event.kind}  # fmt: skip
            assert json.dumps(list(row.items())) == json.dumps(list(expected.items()))
