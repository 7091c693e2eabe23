"""Lazy commits on a real store: what nobody waits for is committed within the lazy window
(with what follows it), and whatever someone waits for (the engine's `bus.durable()`, a
committed reader) is committed at once, never held for the window."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.store import sqlite as store_sqlite
from l3tui.store.sqlite import Store


def notice(text: str) -> ev.SystemNotice:
    return ev.SystemNotice(at=time.time(), topic="test", message=text)


def stored_notices(state: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{state / 'l3tui.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM events WHERE kind = 'system_notice'").fetchall()
    finally:
        conn.close()
    return [row[0] for row in rows]


async def test_what_someone_waits_for_is_committed_without_the_lazy_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "LAZY_COMMIT_S", 600.0)
    bus = EventBus()
    store = Store(tmp_path, actor="test")
    await store.open(bus)
    try:
        reader = bus.subscribe("printer", committed=True)
        bus.publish(notice("lazy-one"))
        # A committed reader waiting for it: delivered once on disk, long before 600 s.
        got = await asyncio.wait_for(reader.get(), 30)
        assert isinstance(got, ev.SystemNotice) and got.message == "lazy-one"
        assert any("lazy-one" in row for row in stored_notices(tmp_path))
        reader.close()
        bus.publish(notice("lazy-two"))
        await asyncio.sleep(0.2)  # the writer has taken it and now waits out its window
        await asyncio.wait_for(bus.durable(), 30)  # the engine waiting: committed at once
        assert any("lazy-two" in row for row in stored_notices(tmp_path))
    finally:
        await store.close()


async def test_what_nobody_waits_for_is_committed_within_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "LAZY_COMMIT_S", 0.2)
    bus = EventBus()
    store = Store(tmp_path, actor="test")
    await store.open(bus)
    try:
        bus.publish(notice("nobody-waits"))
        deadline = time.monotonic() + 30
        while not any("nobody-waits" in row for row in stored_notices(tmp_path)):
            assert time.monotonic() < deadline, "never committed"
            await asyncio.sleep(0.05)
        assert store.commits >= 1
    finally:
        await store.close()
