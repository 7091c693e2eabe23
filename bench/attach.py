"""An attached console's view of a daemon: how many events a client receives per second, and
how long after a task's state changes the client holds a snapshot that shows it (p50/p99),
with about 1,000 events/s flowing (paced executions of a 10-task workflow).

A real `l3tui daemon` process on a temp state dir; one client follows everything, as a
console does (snapshots and events); another submits the work. The floor, measured in the
same run under the same load: the round trip of the cheapest request (`health`).

    .venv/bin/python bench/attach.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3tui.daemon.client import daemon_answers, find_socket
from l3tui.daemon.protocol import MAX_PUSH_BYTES, decode, encode

TASKS = 10
EVENTS_PER_EXECUTION = 3 * TASKS + 3  # waiting/queued, started, finished per task; +exec
TARGET_EVENTS_PER_S = 1000
SECONDS = 20.0


def config_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="l3bench-attach-"))
    tasks = "\n".join(f"      - {{id: t{i}, action: noop"
                      + (f", dependencies: [t{i - 1}]" if i else "") + "}"
                      for i in range(TASKS))  # fmt: skip
    (root / "l3-workflows.yml").write_text(f"workflows:\n  chain:\n    name: chain\n    tasks:\n"
                                           f"{tasks}\n")  # fmt: skip
    (root / "l3-actions.yml").write_text("actions: {}\n")
    (root / "l3-scheduling.yml").write_text(textwrap.dedent("""
        scheduling:
          resource_limits: {max_concurrent_tasks: 64, max_cpu_usage: 100, max_memory_usage: 100}
    """))
    return root


async def connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_PUSH_BYTES)
    decode(await reader.readuntil(b"\n"))
    writer.write(encode({"type": "hello", "protocol": [1, 0], "actor": "bench@attach"}))
    return reader, writer


async def measure(path: Path) -> dict[str, float]:
    follower_r, follower_w = await connect(path)
    follower_w.write(encode({"type": "request", "id": "sub", "method": "subscribe",
                             "params": {}}))  # fmt: skip
    submit_r, submit_w = await connect(path)
    changes: dict[int, float] = {}  # seq -> when the daemon made the state change
    snapshots: list[tuple[int, float]] = []  # (seq, when the client held it)
    received = 0
    stop = asyncio.Event()

    async def follow() -> None:
        nonlocal received
        while not stop.is_set():
            line = await follower_r.readuntil(b"\n")
            now = time.time()
            message = json.loads(line)
            if message["type"] == "event":
                received += 1
                event = message["event"]
                if event["kind"] in ("task_started", "task_finished", "task_state"):
                    changes[message["seq"]] = float(event["at"])
            elif message["type"] == "snapshot":
                snapshots.append((message["seq"], now))

    replies: dict[str, asyncio.Future[float]] = {}

    async def answers() -> None:
        while True:
            message = json.loads(await submit_r.readuntil(b"\n"))
            future = replies.pop(str(message.get("id")), None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    async def request(method: str, params: dict[str, object], rid: str) -> float:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        replies[rid] = future
        sent = time.perf_counter()
        submit_w.write(encode({"type": "request", "id": rid, "method": method,
                               "params": params}))  # fmt: skip
        return await future - sent

    follower = asyncio.ensure_future(follow())
    replier = asyncio.ensure_future(answers())
    await asyncio.sleep(1.0)
    rate = TARGET_EVENTS_PER_S / EVENTS_PER_EXECUTION
    rtts: list[float] = []
    started = time.monotonic()
    base_received = received
    n = 0
    pending: set[asyncio.Future[float]] = set()
    while time.monotonic() - started < SECONDS:
        n += 1
        submitted = asyncio.ensure_future(request("run_workflow", {"workflow_id": "chain"},
                                                  f"r{n}"))  # fmt: skip
        pending.add(submitted)
        submitted.add_done_callback(pending.discard)
        if n % 10 == 0:
            rtts.append(await request("health", {}, f"h{n}"))
        next_at = started + n / rate
        await asyncio.sleep(max(next_at - time.monotonic(), 0))
    elapsed = time.monotonic() - started
    events_per_s = (received - base_received) / elapsed
    await asyncio.sleep(2.0)
    stop.set()
    follower.cancel()
    replier.cancel()
    follower_w.close()
    submit_w.close()
    lags = []
    snapshot_seqs = [s for s, _ in snapshots]
    import bisect

    for seq, at in changes.items():
        i = bisect.bisect_left(snapshot_seqs, seq)
        if i < len(snapshots):
            lags.append(snapshots[i][1] - at)
    lags.sort()
    return {
        "events_per_s": events_per_s,
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * lags[int(len(lags) * 0.99) - 1],
        "rtt_p50_ms": 1000 * statistics.median(rtts),
        "snapshots_per_s": len(snapshots) / (elapsed + 3),
        "changes": len(lags),
    }


def main() -> None:
    config = config_dir()
    state = Path(tempfile.mkdtemp(prefix="l3bench-attach-state-"))
    runtime_dir = Path(tempfile.mkdtemp(prefix="l3bench-xdg-"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    l3tui = Path(sys.executable).with_name("l3tui")
    daemon = subprocess.Popen([str(l3tui), "daemon", "--config", str(config), "--state",
                               str(state)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
        deadline = time.monotonic() + 60
        while not daemon_answers(state):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)
        path = find_socket(state)
        assert path is not None
        result = asyncio.run(measure(path))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    print(f"client received {result['events_per_s']:.0f} events/s "
          f"(target flow {TARGET_EVENTS_PER_S}/s), {result['snapshots_per_s']:.1f} snapshots/s")
    print(f"state change -> client's snapshot: p50 {result['lag_p50_ms']:.1f} ms, "
          f"p99 {result['lag_p99_ms']:.1f} ms over {result['changes']:.0f} changes "
          f"(goal p99 < 100 ms)")
    print(f"floor: round trip of a trivial request under the same load, "
          f"p50 {result['rtt_p50_ms']:.1f} ms")
    print(f"RESULT events_per_s={result['events_per_s']:.0f} "
          f"lag_p50_ms={result['lag_p50_ms']:.1f} lag_p99_ms={result['lag_p99_ms']:.1f} "
          f"rtt_p50_ms={result['rtt_p50_ms']:.1f}")


if __name__ == "__main__":
    main()
