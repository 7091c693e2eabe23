"""The coordinator's way in, on a real `l3tui daemon` process: how many decisions a second
it accepts from the inbox (1,000 small `run_task` files renamed in at once, counted until
every one is recorded and has started its execution), and the lag from a decision file's
rename to its execution's first task starting (p50/p99 over paced decisions, 20 a second).
The floor, in the same run under the same daemon: the same lag for decisions sent through
the socket (`l3tui submit`'s path), which skips the inbox.

    .venv/bin/python bench/coordinator.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3tui.daemon.client import RemoteRuntime, daemon_answers

BURST = 1000
PACED = 200
PACE_S = 0.05
SOCKET_PACED = 100


def config_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="l3bench-coord-"))
    (root / "l3-workflows.yml").write_text("workflows:\n  p:\n    name: p\n    tasks: "
                                           "[{id: a, action: noop}]\n")  # fmt: skip
    (root / "l3-actions.yml").write_text("actions:\n  yes: {command: [\"true\"]}\n")
    (root / "l3-scheduling.yml").write_text(textwrap.dedent("""
        scheduling:
          resource_limits: {max_concurrent_tasks: 16, max_cpu_usage: 100, max_memory_usage: 100}
    """))
    return root


def decision(decision_id: str) -> bytes:
    return json.dumps({"id": decision_id, "kind": "run_task", "action": "yes",
                       "source": "bench"}).encode()  # fmt: skip


def query(state: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{state / 'l3tui.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def first_task_starts(state: Path, prefix: str) -> dict[str, float]:
    """Decision id -> when its execution's first task started (the daemon's clock)."""
    # An attempt's row leaves `starting` when its task_started is written, with its time
    # (task events themselves are stored packed: store/rows.py).
    rows = query(state, "SELECT e.trigger, min(a.started_at) FROM task_attempts a JOIN "
                 "executions e ON e.id = a.execution_id WHERE a.state != 'starting' AND "
                 f"e.trigger LIKE 'decision:{prefix}%' GROUP BY e.trigger")  # fmt: skip
    return {str(t).removeprefix("decision:"): float(at) for t, at in rows}  # type: ignore[arg-type]


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the daemon")
        time.sleep(0.02)


def burst(state: Path) -> float:
    """1,000 files renamed into the inbox at once; decisions/s until all have acted."""
    staging = state / "staging"
    staging.mkdir()
    for i in range(BURST):
        (staging / f"b{i:04d}.json").write_bytes(decision(f"b{i:04d}"))
    inbox = state / "inbox"
    started = time.monotonic()
    for i in range(BURST):
        os.rename(staging / f"b{i:04d}.json", inbox / f"b{i:04d}.json")
    wait_for(lambda: query(state, "SELECT count(*) FROM decisions WHERE id LIKE 'b%' AND "
                           "state = 'acted'")[0][0] == BURST, 120)  # fmt: skip
    return BURST / (time.monotonic() - started)


def paced_inbox(state: Path) -> list[float]:
    inbox = state / "inbox"
    staging = state / "staging"
    renamed: dict[str, float] = {}
    started = time.monotonic()
    for i in range(PACED):
        name = f"l{i:04d}"
        (staging / f"{name}.json").write_bytes(decision(name))
        next_at = started + i * PACE_S
        time.sleep(max(next_at - time.monotonic(), 0))
        os.rename(staging / f"{name}.json", inbox / f"{name}.json")
        renamed[name] = time.time()
    wait_for(lambda: len(first_task_starts(state, "l")) == PACED, 60)
    starts = first_task_starts(state, "l")
    return sorted(1000 * (starts[k] - renamed[k]) for k in renamed)


async def paced_socket(state: Path) -> list[float]:
    remote = RemoteRuntime(state, actor="bench@coordinator", client="bench", follow=False,
                           reconnect=False)  # fmt: skip
    await remote.connect()
    sent: dict[str, float] = {}
    try:
        started = time.monotonic()
        for i in range(SOCKET_PACED):
            name = f"s{i:04d}"
            await asyncio.sleep(max(started + i * PACE_S - time.monotonic(), 0))
            sent[name] = time.time()
            await remote.submit(json.loads(decision(name)))
    finally:
        await remote.close()
    wait_for(lambda: len(first_task_starts(state, "s")) == SOCKET_PACED, 60)
    starts = first_task_starts(state, "s")
    return sorted(1000 * (starts[k] - sent[k]) for k in sent)


def p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> None:
    config = config_dir()
    state = Path(tempfile.mkdtemp(prefix="l3bench-coord-state-"))
    runtime_dir = Path(tempfile.mkdtemp(prefix="l3bench-xdg-"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    l3tui = Path(sys.executable).with_name("l3tui")
    daemon = subprocess.Popen([str(l3tui), "daemon", "--config", str(config), "--state",
                               str(state)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: daemon_answers(state) or daemon.poll() is not None, 60)
        if daemon.poll() is not None:
            raise SystemExit("the daemon did not start")
        wait_for(lambda: (state / "inbox").is_dir(), 30)
        load = os.getloadavg()[0]
        rate = burst(state)
        wait_for(lambda: len(first_task_starts(state, "b")) == BURST, 120)  # let it settle
        time.sleep(1.0)
        inbox_lags = paced_inbox(state)
        socket_lags = asyncio.run(paced_socket(state))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
    print(f"inbox: {BURST} decision files renamed in at once, accepted and acted on "
          f"(executions created) at {rate:.0f} decisions/s (goal >= 500); load average "
          f"{load:.1f} before")
    print(f"rename -> first task started, {PACED} decisions at {1 / PACE_S:.0f}/s: p50 "
          f"{statistics.median(inbox_lags):.1f} ms, p99 {p99(inbox_lags):.1f} ms "
          f"(goal p99 < 200 ms)")  # fmt: skip
    print(f"floor: the same through the socket ({SOCKET_PACED} decisions): p50 "
          f"{statistics.median(socket_lags):.1f} ms, p99 {p99(socket_lags):.1f} ms")
    print(f"RESULT decisions_per_s={rate:.0f} lag_p99_ms={p99(inbox_lags):.1f} "
          f"lag_p50_ms={statistics.median(inbox_lags):.1f} "
          f"socket_lag_p99_ms={p99(socket_lags):.1f}")


if __name__ == "__main__":
    main()
