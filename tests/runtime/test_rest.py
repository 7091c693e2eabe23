"""A real Runtime at rest: its periodic work shares wake-ups (the loop's lag is read from the
metrics ticker's own sleep, not from a watcher waking the loop twice more a second), and what
health shows is still measured: a blocked loop is seen as lag."""

from __future__ import annotations

import asyncio
import time

WORKFLOWS = """
workflows:
  quiet:
    name: quiet
    tasks:
      - {id: a, action: nap}
"""
ACTIONS = """
actions:
  nap: {command: [sleep, "1.3377"]}
"""


async def test_the_loop_lag_is_measured_by_the_ticker_without_a_watcher_of_its_own(
        make_config, runtime_for):  # fmt: skip
    async with runtime_for(make_config(WORKFLOWS, actions=ACTIONS), tick_s=0.05) as rt:
        names = sorted(task.get_name() for task in rt._tasks)
        assert "loop-lag" not in names and "metrics-ticker" in names  # one wake-up, not three
        seen: list[tuple[float, str]] = []  # each lag measured, as health then judged it
        tick = rt.metrics.tick

        def ticked(*args: float) -> None:  # the ticker's next turn: its lag was just measured
            check = next(c for c in rt.health().checks if c.name == "event loop")
            seen.append((rt.loop_lag_s, check.state))
            tick(*args)

        rt.metrics.tick = ticked  # type: ignore[method-assign]
        async with asyncio.timeout(30):
            while not seen:
                await asyncio.sleep(0.01)  # the ticker sleeps now
        time.sleep(0.6)  # block the loop: whatever sleeps wakes that late
        async with asyncio.timeout(30):
            while max(lag for lag, _ in seen) < 0.3:
                await asyncio.sleep(0.01)
        # 0.3 s and more of lag is at least a warning
        assert all(state in ("warn", "bad") for lag, state in seen if lag >= 0.3)


async def test_the_idle_runtimes_periodic_timers_fall_due_in_one_turn(make_config, runtime_for):
    """The ticker, the scheduler's timer loop and the sampler (each once a second) set their
    timers for the same instants of the loop's clock: the idle loop wakes once for the three.
    Checked on the timers' due times as set (not by wall time)."""
    loop = asyncio.get_running_loop()
    due: dict[str, list[float]] = {"metrics-ticker": [], "scheduler-timers": [],
                                   "resource-sampler": []}  # fmt: skip
    call_at = loop.call_at

    def recorded(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        task = asyncio.current_task()
        if task is not None and task.get_name() in due:
            due[task.get_name()].append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = recorded  # type: ignore[method-assign]
    try:
        async with runtime_for(make_config(WORKFLOWS, actions=ACTIONS)):
            async with asyncio.timeout(30):
                while min(len(times) for times in due.values()) < 3:
                    await asyncio.sleep(0.05)
    finally:
        del loop.call_at
    # After the first turn (started at any time), each sets its timers for whole seconds.
    grid = {name: {round(when, 6) for when in times[1:]} for name, times in due.items()}
    for name, whens in grid.items():
        assert whens and all(when == int(when) for when in whens), (name, whens)
    assert grid["metrics-ticker"] & grid["scheduler-timers"] & grid["resource-sampler"]
