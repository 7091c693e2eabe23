"""What keeping escapees in check costs, per containment mode (L3TUI_CONTAINMENT):

- per task: `true` tasks through the LocalExecutor, two at a time (the slope between two
  sizes, so start-up costs cancel), against the same loop with `process group` only
  (subreaper without adoption: the tag is set, no sweep ever finds anything to do);
- latency: a task leaves `setsid sleep` behind; how long after its `wait()` returned the
  escapee was dead (negative: it died before the task was reported ended).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = (200, 800)
REPEAT = 3
LATENCY_RUNS = 15


def executor(mode: str, adopt: bool):  # type: ignore[no-untyped-def]
    from l3tui.engine.executors.local import LocalExecutor

    os.environ["L3TUI_CONTAINMENT"] = mode
    return LocalExecutor(10 << 20, 1.0, adopt_orphans=adopt)


async def run_tasks(mode: str, adopt: bool, count: int) -> float:
    from l3tui.engine.executors.base import CommandJob

    ex = executor(mode, adopt)
    job = CommandJob(("true",), shutil.which("true") or "/bin/true", dict(os.environ), None, 60.0)
    queue = list(range(count))

    async def lane() -> None:
        while queue:
            queue.pop()
            await ex.start(job, None, lambda lines: None, lambda n, v: None).wait()

    started = time.perf_counter()
    await asyncio.gather(lane(), lane())
    took = time.perf_counter() - started
    print(f"    {mode:9s} adopt={adopt!s:5s} {count:4d} tasks {took:.3f}s "
          f"({ex.containment.describe()[:60]})", flush=True)
    await ex.close()
    return took


async def escapee_latency(mode: str) -> list[float]:
    from l3tui.engine.executors.base import CommandJob

    ex = executor(mode, True)
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for _ in range(LATENCY_RUNS):
        died: asyncio.Future[float] = loop.create_future()
        fds: list[int] = []

        def watch(lines: list[str], died: asyncio.Future[float] = died,
                  fds: list[int] = fds) -> None:  # fmt: skip
            # Watch the escapee from the moment its pid is printed: its death is stamped
            # when it happens, even before the task is reported ended.
            fd = os.pidfd_open(int(lines[0]))
            fds.append(fd)
            loop.add_reader(fd, lambda: died.done() or died.set_result(time.perf_counter()))

        job = CommandJob(("sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!; sleep 0.05"),
                         "/bin/sh", dict(os.environ), None, 60.0)  # fmt: skip
        await ex.start(job, None, watch, lambda n, v: None).wait()
        ended = time.perf_counter()
        at = await asyncio.wait_for(died, 10)
        loop.remove_reader(fds[0])
        os.close(fds[0])
        out.append(at - ended)
    await ex.close()
    return out


def main() -> None:
    for mode, adopt in (("subreaper", False), ("subreaper", True), ("cgroup", False)):
        times = {}
        for size in SIZES:
            times[size] = min(asyncio.run(run_tasks(mode, adopt, size)) for _ in range(REPEAT))
        (n1, t1), (n2, t2) = sorted(times.items())
        print(f"{mode} adopt={adopt}: {(t2 - t1) / (n2 - n1) * 1e3:.3f} ms per task")
    for mode in ("cgroup", "subreaper"):
        lat = asyncio.run(escapee_latency(mode))
        print(f"{mode}: escapee dead {statistics.median(lat) * 1e3:+.1f} ms after its task's "
              f"wait() returned (median of {len(lat)}; max {max(lat) * 1e3:+.1f} ms)")


if __name__ == "__main__":
    main()
