"""Console costs, each in a real terminal (a pty of 120x40) with the real Runtime:

- first paint with 0 / 10,000 / 100,000 queued tasks, whole process (interpreter start,
  imports, config, Runtime, app) until the first frame is written; the seconds spent
  building the synthetic queue are subtracted (a live queue grows while the console runs).
  Baselines: an empty Textual app in the same harness, and the console with nothing queued
  (the floor of any queue size). Goal: <= 1.0 s at 100k. The child's CPU until its first
  paint (queue building subtracted) is printed too: a busy machine inflates it far less.
- RSS of that process at 100k after the first paint. Goal: <= 90 MB. Floor, measured the
  same way: the console with nothing queued plus one bare heap item per task (-priority,
  arrival, execution id, task id), the least a dispatch-ordered queue holds.
- idle CPU over 12 s at a 1 Hz refresh (the sampler and the engine ticker run too), and the
  bytes it writes to the terminal per minute (what crosses an SSH link; independent of the
  machine's load). Floors, measured over the same 12 s window at the same time (the load
  and the CPU's speed are then the same for all three: measured one after another, a
  busier or quieter minute moved the figures more than the code did): a Textual app with a
  header clock and a sparkline fed once a second (the top bar and sparklines are what an
  idle console repaints), and a bare Textual app doing nothing (Textual's own idle cost:
  its input thread wakes ten times a second). Goal: <= 1 % of a core. Printed beside them,
  over the same window: the Runtime alone with the same config and no console (its sampler,
  ticker, scheduler clock and store at rest), the part of the console's figure that is not
  the console's.
- time to apply one refresh (snapshot + redraw of the state panes) with 1,000 running
  executions. Goal: <= 10 ms. Floor: the CPU of the same harness round without the refresh
  (Pilot's wait for every widget's message queue, a render with nothing changed).

Children inherit PYTHONDONTWRITEBYTECODE (the first line says which): without .pyc every
start compiles l3tui's modules (~0.2 s more than users' installs pay).

Last line: RESULT first_paint_100k_s=<a> idle_cpu_pct=<b> rss_100k_mb=<c> refresh_ms=<d>
rss_floor_100k_mb=<e> first_paint_0_s=<f> idle_floor_pct=<g> refresh_cpu_ms=<h>
idle_bytes_per_min=<i> idle_floor_bytes_per_min=<j> idle_bare_pct=<k> refresh_floor_cpu_ms=<l>
first_paint_100k_cpu_s=<m> first_paint_0_cpu_s=<n> idle_runtime_pct=<o>
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import heapq
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (120, 40)
IDLE_S = 12.0
WORKFLOWS = """
workflows:
  held:
    name: "مهمة محجوزة"
    tasks:
      - {id: a, name: "أ", action: nap, parameters: {seconds: 1}}
      - {id: b, action: nap, parameters: {seconds: 1}, dependencies: [a]}
      - {id: c, action: nap, parameters: {seconds: 1}, dependencies: [a]}
"""
ACTIONS = "actions:\n  nap: {command: [sleep, '${seconds}']}\n"


def bench_config(refresh_ms: int = 1000) -> Path:
    """The bundled dashboards and alert rules, with one quick workflow and 1 Hz refresh."""
    root = Path(tempfile.mkdtemp(prefix="l3bench-console-"))
    (root / "l3-workflows.yml").write_text(WORKFLOWS, encoding="utf-8")
    (root / "l3-actions.yml").write_text(ACTIONS, encoding="utf-8")
    (root / "l3-scheduling.yml").write_text("scheduling: {}\n", encoding="utf-8")
    dashboard = (ROOT / "config" / "l3-dashboard.yml").read_text(encoding="utf-8")
    (root / "l3-dashboard.yml").write_text(
        dashboard.replace("refresh_interval: 30000", f"refresh_interval: {refresh_ms}"),
        encoding="utf-8",
    )
    return root


# ------------------------------------------------------------------ children (in the pty)


def child(mode: str, arg: str, report_fd: int) -> None:
    """Runs inside the pty. Writes one line to `report_fd` when its measurement is ready."""
    if mode in ("empty", "live-idle", "bare-idle"):
        import random

        from textual.app import App, ComposeResult
        from textual.widgets import Header, Sparkline

        class Empty(App[None]):
            """Empty; or (`live-idle`) a header clock and a sparkline fed once a second:
            the least a console showing live figures at 1 Hz repaints."""

            def compose(self) -> ComposeResult:
                if mode == "live-idle":
                    yield Header(show_clock=True)
                    yield Sparkline([random.random() for _ in range(60)])

            def on_ready(self) -> None:
                os.write(report_fd, b"PAINTED 0\n")
                if mode == "empty":
                    self.exit()
                    return
                if mode == "live-idle":
                    self.set_interval(1.0, self._feed)
                self.call_later(lambda: os.write(report_fd, b"IDLE-START\n"))

            def _feed(self) -> None:
                spark = self.query_one(Sparkline)
                spark.data = [*list(spark.data or [])[1:], random.random()]

        Empty().run()
        return
    asyncio.run(_console_child(mode, int(arg), report_fd))


def _admitted(entry: Any) -> None:
    raise AssertionError("held entries are never admitted")


async def _console_child(mode: str, queued: int, report_fd: int) -> None:
    import psutil

    from l3tui.config import load_config
    from l3tui.dashboard.app import ConsoleApp
    from l3tui.engine.scheduling.scheduler import QueueEntry
    from l3tui.runtime import Runtime

    imported_cpu = time.process_time()  # the interpreter, the bench's and l3tui's imports
    config = load_config(bench_config())
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    async with Runtime(config, state, actor="bench") as rt:
        if mode == "runtime-idle":  # the Runtime alone, at rest: no console
            os.write(report_fd, b"PAINTED 0\n")
            os.write(report_fd, b"IDLE-START\n")
            await asyncio.Event().wait()  # until terminated
        built, built_cpu = time.perf_counter(), time.process_time()
        if mode == "floor":
            # The least any dispatch-ordered queue of these tasks holds: one heap item per
            # task, (-priority, arrival, execution id, task id), the id strings shared.
            floor: list[tuple[int, int, str, str]] = []
            task_ids = [f"task_{n:02d}" for n in range(100)]
            exec_ids = [f"bench-{start // 100:05d}" for start in range(0, queued, 100)]
            for i in range(queued):
                heapq.heappush(floor, (-(10, 8, 5, 3, 1)[i % 5], i, exec_ids[i // 100],
                                       task_ids[i % 100]))  # fmt: skip
            queued = 0
        if queued:
            # As a real queue is made: executions of a few workflows, 100 tasks each, whose
            # ids and names are shared by every execution of the same definition.
            task_ids = [f"task_{n:02d}" for n in range(100)]
            names = [f"مهمة {n}" for n in range(100)]
            for start in range(0, queued, 100):
                exec_id = f"bench-{start // 100:05d}"
                rt.scheduler.hold(exec_id)
                for n in range(min(100, queued - start)):
                    rt.scheduler.submit(QueueEntry(
                        execution_id=exec_id, task_id=task_ids[n], workflow_id="held",
                        name=names[n], priority=(10, 8, 5, 3, 1)[n % 5], on_admit=_admitted,
                    ))  # fmt: skip
        build_s = time.perf_counter() - built
        build_cpu = time.process_time() - built_cpu

        class Bench(ConsoleApp):
            def on_ready(self) -> None:
                rss = psutil.Process().memory_info().rss
                cpu = time.process_time() - build_cpu  # the whole process's, until now
                os.write(report_fd, f"PAINTED {build_s:.4f} {rss} {cpu:.4f} {imported_cpu:.4f} "
                                    f"{built_cpu:.4f}\n".encode())  # fmt: skip
                if mode in ("paint", "floor"):
                    self.exit()
                else:
                    self.call_later(self._idle_marker)

            def _idle_marker(self) -> None:
                os.write(report_fd, b"IDLE-START\n")

        app = Bench(rt, theme="l3-ansi", bidi=True, ssh=False)
        gc.freeze()  # as `l3tui` (commands/console.py) does before the app starts
        await app.run_async()


# ------------------------------------------------------------------ the harness


class PtyChild:
    """A child process on a pty of SIZE; its output is drained, its reports collected."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="", L3TUI_FORCE_CONSOLE="1")
        env.pop("SSH_CONNECTION", None)
        env.pop("SSH_CLIENT", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", *args, str(write_fd)],
            stdin=slave, stdout=slave, stderr=slave, pass_fds=(write_fd,), env=env,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        os.close(write_fd)
        self.master = master
        self.written = 0
        """Bytes the child wrote to its terminal so far."""
        self.reports = os.fdopen(read_fd, "r")
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _drain_output(self) -> None:
        try:
            while data := os.read(self.master, 65536):
                self.written += len(data)
        except OSError:
            pass

    def report(self) -> tuple[float, list[str]]:
        line = self.reports.readline()
        if not line:
            raise RuntimeError(f"child {self.proc.args} ended without reporting")
        return time.perf_counter() - self.started, line.split()

    def finish(self) -> None:
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        self.reports.close()


CPU_PHASES: dict[str, tuple[float, float, float]] = {}
"""args -> the child's CPU seconds until its first paint in three parts: the interpreter and
imports; the config and the Runtime; the app (queue building excluded). Diagnostics only."""


def first_paint(*args: str) -> tuple[float, int, float]:
    """(seconds to first paint minus queue building, rss, CPU seconds of the child until
    its first paint minus queue building: what a busy machine's other work inflates less)
    of one child."""
    child_proc = PtyChild(*args)
    took, words = child_proc.report()
    child_proc.finish()
    build_s = float(words[1]) if len(words) > 1 else 0.0
    rss = int(words[2]) if len(words) > 2 else 0
    cpu = float(words[3]) if len(words) > 3 else 0.0
    if len(words) > 5:
        imported, runtime = float(words[4]), float(words[5])
        CPU_PHASES[" ".join(args)] = (imported, runtime - imported, cpu - runtime)
    return took - build_s, rss, cpu


def idle_costs(modes: tuple[str, ...]) -> list[tuple[float, float]]:
    """(% of one core, bytes written per minute) of each child while nothing happens: the
    console (`idle`) and the floors, all measured over the same window at the same time."""
    import psutil

    children = [PtyChild(mode, "0") for mode in modes]
    for child_proc in children:
        child_proc.report()
        child_proc.report()  # IDLE-START
    time.sleep(1.0)  # the first chart import and plot are not idle work
    procs = [psutil.Process(c.proc.pid) for c in children]
    before = [(p.cpu_times(), c.written) for p, c in zip(procs, children, strict=True)]
    start = time.perf_counter()
    time.sleep(IDLE_S)
    after = [(p.cpu_times(), c.written) for p, c in zip(procs, children, strict=True)]
    elapsed = time.perf_counter() - start
    out = []
    for (cpu0, bytes0), (cpu1, bytes1) in zip(before, after, strict=True):
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        out.append((100.0 * used / elapsed, (bytes1 - bytes0) * 60.0 / elapsed))
    for child_proc in children:
        child_proc.proc.terminate()
        child_proc.finish()
    return out


async def refresh_cost(executions: int = 1000, rounds: int = 30) -> tuple[float, float, float]:
    """Median ms of one full refresh (snapshot, every pane, rendering what changed) with
    `executions` running executions: wall, CPU of the loop's thread (what a busy machine's
    other work does not inflate), and the floor: CPU of the same round without the refresh
    (the harness's wait for every widget's queue and a render with nothing dirty),
    interleaved with the refreshes."""
    from l3tui.config import load_config
    from l3tui.dashboard.app import ConsoleApp
    from l3tui.runtime import Runtime

    config = load_config(bench_config())
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    async with Runtime(config, state, actor="bench") as rt:
        for _ in range(executions):
            execution = rt.engine.create("held", None, trigger="bench")
            rt.scheduler.hold(execution.id)  # started, but its tasks wait in the queue
            rt.engine.start(execution)
        app = ConsoleApp(rt, theme="l3-ansi", bidi=True, ssh=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            active = sum(1 for e in app.snapshot.executions if e.state == "running")
            assert active == executions, f"{active} running executions, wanted {executions}"
            samples, cpu, floor = [], [], []
            for _ in range(rounds):
                started, cpu_started = time.perf_counter(), time.thread_time()
                app.refresh_now(full=True)  # every pane of the dashboard redraws
                await pilot._wait_for_screen()  # the panes' updates reach the screen
                app.screen._on_timer_update()  # and the changed lines are rendered
                samples.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - cpu_started) * 1000)
                cpu_started = time.thread_time()
                await pilot._wait_for_screen()  # the floor: the same round, no refresh
                app.screen._on_timer_update()
                floor.append((time.thread_time() - cpu_started) * 1000)
            return statistics.median(samples), statistics.median(cpu), statistics.median(floor)


def main() -> None:
    started = time.perf_counter()
    bytecode = "without" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "with"
    print(f"load average {os.getloadavg()[0]:.2f}; children run {bytecode} .pyc writing")
    empty_s, _, _ = first_paint("empty", "0")
    print(f"empty Textual app, first paint: {empty_s:.3f} s (baseline)")
    paint: dict[int, float] = {}
    rss: dict[int, int] = {}
    paint_cpu: dict[int, float] = {}
    for queued in (0, 10_000, 100_000):
        paint[queued], rss[queued], paint_cpu[queued] = first_paint("paint", str(queued))
        mb = rss[queued] / 2**20
        print(f"console first paint, {queued:>7,} queued: {paint[queued]:.3f} s "
              f"({paint[queued] / empty_s:.2f}x empty app), {paint_cpu[queued]:.3f} s CPU, "
              f"rss {mb:.1f} MB")  # fmt: skip
        imports, runtime, app = CPU_PHASES.get(f"paint {queued}", (0.0, 0.0, 0.0))
        print(f"  its CPU: interpreter and imports {imports:.3f} s, config and Runtime "
              f"{runtime:.3f} s, app until the first frame {app:.3f} s")  # fmt: skip
    _, floor_rss, _ = first_paint("floor", "100000")
    per_task = (rss[100_000] - rss[0]) / 100_000
    floor_per_task = (floor_rss - rss[0]) / 100_000
    print(f"  100k queued cost {per_task:.0f} B per task, rss {rss[100_000] / floor_rss:.2f}x "
          f"the floor; floor (the console with no queue plus one bare heap item per task) "
          f"{floor_rss / 2**20:.1f} MB, "
          f"{floor_per_task:.0f} B per task; the first paint's floor is the console with "
          f"nothing queued ({paint[0]:.3f} s)")  # fmt: skip
    refresh_ms, refresh_cpu_ms, refresh_floor_ms = asyncio.run(refresh_cost())
    print(f"one refresh with 1,000 running executions: {refresh_ms:.2f} ms "
          f"({refresh_ms / 16:.2f}x the 16 ms frame budget), "
          f"{refresh_cpu_ms:.2f} ms CPU; floor (the same round without the refresh: the "
          f"harness's wait for every widget and a render) "
          f"{refresh_floor_ms:.2f} ms CPU")  # fmt: skip
    (cpu, idle_bytes), (floor_cpu, floor_bytes), (bare_cpu, _), (runtime_cpu, _) = idle_costs(
        ("idle", "live-idle", "bare-idle", "runtime-idle"))
    print(f"idle over the same {IDLE_S:.0f} s, at once: the console at 1 Hz refresh "
          f"{cpu:.2f} % of a core, {idle_bytes / 1024:.1f} KiB written per minute; floor: a "
          f"Textual app with a header clock and a 1 Hz sparkline {floor_cpu:.2f} %, "
          f"{floor_bytes / 1024:.1f} KiB per minute; a bare Textual app {bare_cpu:.2f} %; the "
          f"Runtime alone (no console) {runtime_cpu:.2f} %")
    print(f"bench took {time.perf_counter() - started:.1f} s; load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"RESULT first_paint_100k_s={paint[100_000]:.3f} idle_cpu_pct={cpu:.2f} "
          f"rss_100k_mb={rss[100_000] / 2**20:.1f} refresh_ms={refresh_ms:.2f} "
          f"rss_floor_100k_mb={floor_rss / 2**20:.1f} first_paint_0_s={paint[0]:.3f} "
          f"idle_floor_pct={floor_cpu:.2f} refresh_cpu_ms={refresh_cpu_ms:.2f} "
          f"idle_bytes_per_min={idle_bytes:.0f} idle_floor_bytes_per_min={floor_bytes:.0f} "
          f"idle_bare_pct={bare_cpu:.2f} refresh_floor_cpu_ms={refresh_floor_ms:.2f} "
          f"first_paint_100k_cpu_s={paint_cpu[100_000]:.3f} "
          f"first_paint_0_cpu_s={paint_cpu[0]:.3f} idle_runtime_pct={runtime_cpu:.2f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
