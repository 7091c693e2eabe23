"""Consoles attached to a real daemon: the keys act on the daemon's real processes, `q`
detaches and leaves them running, a daemon killed with -9 shows a banner and the console
reattaches to its successor; a client that reads nothing costs the daemon nothing; recurring
tasks fire with no console at all."""

from __future__ import annotations

import getpass
import json
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import psutil
import pytest

from l3tui.daemon.client import find_socket
from l3tui.daemon.protocol import decode, encode
from l3tui.daemon.server import QUEUE_BYTES
from l3tui.dashboard.app import ConsoleApp
from tests.conftest import L3TUI, descendants_by_marker
from tests.daemon.conftest import ACTIONS, SCHEDULING, WORKFLOWS, Daemon
from tests.daemon.test_daemon import attach, history, poll, until
from tests.dashboard.snapshot_app import screen_text


def top_line(app: ConsoleApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_an_attached_console_pauses_and_resumes_the_daemons_process_and_q_detaches(
    daemon: Daemon,
) -> None:
    remote = await attach(daemon)
    try:
        started = await remote.run_workflow("sleeper")
        assert started.applied, started.message
        pid = (await until(lambda: descendants_by_marker("sleep 1021"), timeout=60))[0]
        app = ConsoleApp(remote, in_process=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.selection is not None and "daemon" in top_line(app))
            assert f"daemon {daemon.pid}@" in top_line(app)
            await pilot.press("p")
            await until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED)
            # r applies once the console shows it paused (as a person sees it first)
            exec_id = started.execution_id or ""
            await until(lambda: exec_id in app.executions and any(
                t.state == "paused" for t in app.executions[exec_id].tasks))
            await pilot.press("r")
            await until(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED)
            await pilot.press("q")
            await until(lambda: not app.is_running)
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # still running
        view = await remote.fetch_execution(started.execution_id or "")
        assert view is not None and view.state == "running"
    finally:
        await remote.close()
    # Audited with the client's terminal, and the user the kernel vouches for (SO_PEERCRED),
    # not the one the client claimed ("tester").
    actors = {entry["actor"] for entry in json.loads(daemon.cli("audit", "--json").stdout)
              if entry["action"].endswith((".pause", ".resume"))}  # fmt: skip
    assert actors == {f"{getpass.getuser()}@pts/9 (via daemon, console)"}


async def test_kill_9_of_the_daemon_shows_a_banner_and_the_console_reattaches(
    daemon: Daemon,
) -> None:
    remote = await attach(daemon)
    try:
        app = ConsoleApp(remote, in_process=False)
        async with app.run_test(size=(120, 40)):
            await until(lambda: f"daemon {daemon.pid}@" in top_line(app))
            first = daemon.pid
            daemon.kill()
            await until(lambda: "lost" in top_line(app) or "LOST" in top_line(app))
            assert "Traceback" not in screen_text(app)
            daemon.start()
            assert daemon.pid != first
            await until(lambda: f"daemon {daemon.pid}@" in top_line(app), timeout=60)
            started = await remote.run_workflow("quick")  # commands work again
            assert started.applied, started.message
    finally:
        await remote.close()


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def _peak_during(pid: int, work: Any) -> tuple[int, int, Any]:
    """(RSS before, peak RSS while `work()` ran, its result)."""
    before = _rss(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return before, peak[0], result


def _read_until_resync(sock: socket.socket) -> tuple[int, str]:
    """(bytes of event lines read before a resync line, its reason), (..., "eof") if the
    daemon hung up, (..., "none") if no resync came within a minute. Snapshots are not
    counted: one at a time waits for a client, whatever its size."""
    sock.settimeout(5)
    received, pending, deadline = 0, b"", time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            return received, "eof"
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            head = line[:40]
            if b'"type":"resync"' in head:
                return received, str(json.loads(line)["reason"])
            received += len(line) + 1 if b'"type":"event"' in head else 0
    return received, "none"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_client_that_reads_nothing_costs_the_daemon_nothing(make_daemon: Any) -> None:
    tasks = "\n".join(f"      - {{id: t{i}, action: noop}}" for i in range(10_000))
    workflows = WORKFLOWS + f"""
  big:
    name: big
    tasks:
{tasks}
"""
    daemon: Daemon = make_daemon(workflows, ACTIONS, SCHEDULING).start()

    def run_big() -> subprocess.CompletedProcess[str]:
        return subprocess.run([L3TUI, "run", "big", "--json", "--state", str(daemon.state)],
                              env=daemon.env, capture_output=True, text=True, timeout=600,
                              check=False)  # fmt: skip

    path = find_socket(daemon.state)
    assert path is not None

    def subscriber(read: bool) -> tuple[socket.socket, threading.Thread | None]:
        """A console-like client: subscribed to snapshots and every event."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        sock.sendall(encode({"type": "hello", "protocol": [1, 0], "actor": "probe@x"}))
        sock.sendall(encode({"type": "request", "id": "s", "method": "subscribe",
                             "params": {}}))  # fmt: skip
        reader = None
        if read:
            def drain() -> None:
                try:
                    while sock.recv(1 << 20):
                        pass
                except OSError:
                    pass  # closed by the test

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
        return sock, reader

    run_big()  # warm: imports, caches, the first 10k task records
    # Control: a client that keeps up. The snapshots it is pushed cost what they cost.
    reading, _reader = subscriber(read=True)
    try:
        before, peak, control = _peak_during(daemon.pid, run_big)
    finally:
        reading.close()
    assert control.returncode == 0, control.stderr[-2000:]
    control_growth = peak - before

    # The same, but the client never reads: what waits for it must stay bounded.
    stalled, _ = subscriber(read=False)
    try:
        before, peak, result = _peak_during(daemon.pid, run_big)
        assert result.returncode == 0, result.stderr[-2000:]  # the other client kept up
        finished = [json.loads(line) for line in result.stdout.splitlines()
                    if '"execution_finished"' in line]  # fmt: skip
        assert finished and finished[-1]["state"] == "succeeded"
        stalled_growth = peak - before
        print(f"daemon RSS growth during a 10k-task run: {control_growth / 2**20:.1f} MiB "
              f"with a console that reads, {stalled_growth / 2**20:.1f} MiB with one that "
              "reads nothing")  # fmt: skip
        # What the daemon did with what waited: once QUEUE_BYTES were queued it dropped them
        # and owes the client a resync (or, stalled for STALLED_S, disconnected it). Reading
        # now, the client gets the events the socket and the transport held, then that resync;
        # an unbounded queue would send every event and no resync (the read times out).
        received, ending = _read_until_resync(stalled)
        assert ending == "eof" or "fell behind" in ending, ending
        assert received < QUEUE_BYTES, (received, ending)
        # The memory it cost: QUEUE_BYTES of lines, plus their objects, the socket's buffer
        # and the allocator's slack (measured 12-27 MiB over the control on a busy machine;
        # the precise check of the bound is the one above).
        assert stalled_growth - control_growth < 4 * QUEUE_BYTES
        assert daemon.cli("doctor").returncode == 0
    finally:
        stalled.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_recurring_task_fires_with_no_console(make_daemon: Any) -> None:
    scheduling = SCHEDULING + """
  recurring_tasks:
    - {id: every_minute, name: every minute, cron: "* * * * *", workflow: quick, enabled: true}
"""
    daemon: Daemon = make_daemon(WORKFLOWS, ACTIONS, scheduling).start()
    rows = poll(lambda: [r for r in history(daemon) if r["trigger"] == "cron:every_minute"],
                timeout=150, interval=1.0)  # fmt: skip
    assert rows[0]["workflow_id"] == "quick"
    poll(lambda: history(daemon)[0]["state"] == "succeeded", timeout=60)
    assert daemon.stop(signal.SIGTERM) == 0


def test_decode_refuses_what_is_not_a_message() -> None:
    for bad in (b"[1, 2]\n", b"not json\n", b'{"no": "type"}\n'):
        with pytest.raises(Exception) as caught:
            decode(bad)
        assert "message" in str(caught.value) or "JSON" in str(caught.value)
