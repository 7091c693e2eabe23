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
        await asyncio.sleep(0.2)  # the ticker sleeps now
        time.sleep(0.6)  # block the loop: whatever sleeps wakes that late
        async with asyncio.timeout(30):
            while rt.loop_lag_s < 0.3:
                await asyncio.sleep(0.01)
        check = next(c for c in rt.health().checks if c.name == "event loop")
        assert check.state in ("warn", "bad")  # 0.3 s and more of lag is at least a warning
