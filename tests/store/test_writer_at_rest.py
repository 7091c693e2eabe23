"""The store's writer at rest: the one event an idle Runtime publishes a second (a resource
sample) costs the writer no turn of the loop beyond taking it, its lazy window and its
commit (counted by stepping the writer's coroutine, not by wall time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any

from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.store.sqlite import Store


class Stepped(Coroutine[Any, Any, None]):
    """A coroutine that counts how often the loop resumes it."""

    def __init__(self, inner: Coroutine[Any, Any, None]) -> None:
        self.inner = inner
        self.steps = 0

    def send(self, value: Any) -> Any:
        self.steps += 1
        return self.inner.send(value)

    def throw(self, *args: Any) -> Any:
        self.steps += 1
        return self.inner.throw(*args)

    def close(self) -> None:
        self.inner.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self.inner.__await__()


async def test_a_lone_sample_wakes_the_writer_three_times(tmp_path: Path) -> None:
    bus = EventBus()
    store = Store(tmp_path, actor="test")
    probe: list[Stepped] = []

    def write_loop() -> Stepped:
        probe.append(Stepped(Store._write_loop(store)))
        return probe[0]

    store._write_loop = write_loop  # type: ignore[method-assign]
    await store.open(bus)
    try:
        async with asyncio.timeout(30):
            while store.backlog() or not probe[0].steps:  # what opening published, written
                await asyncio.sleep(0.05)
            for n in range(4):  # the first one's commit is followed by the first prune
                commits, steps = store.commits, probe[0].steps
                bus.publish(ev.ResourceSampled(at=time.time(), sample={"cpu_usage": n}))
                while store.commits == commits:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)  # back to waiting for the next event
                # Taken, its lazy window ends, its commit returns; before: one turn more.
                assert n == 0 or probe[0].steps - steps == 3
    finally:
        await store.close()
