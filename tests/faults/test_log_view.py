"""Task output shown truthfully and cheaply, wherever it is shown: a `\\r` progress bar is one
line in its last state (log view, engine, `l3tui logs`), output with escape sequences shows
each line once, `logs --json` escapes C1 controls and `logs` on a terminal strips them, the
log view reads a bounded tail of a huge log and says what it skipped, and `/` on the log
screen filters the log (not a pane hidden behind it). Real Runtime, real processes, real
log files, the real console driven by Pilot, `l3tui logs` on a real pty."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

import pytest

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.messages import SelectionChanged
from l3tui.dashboard.screens.details import TaskScreen
from l3tui.dashboard.views import Pane
from l3tui.dashboard.widgets import log_view as log_view_module
from l3tui.dashboard.widgets.log_view import LogView
from tests.conftest import L3TUI
from tests.dashboard.snapshot_app import screen_text
from tests.dashboard.test_keys import until

SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 2}
  execution: {grace_period: 1s, default_timeout: 120s, log_cap_mb: 512}
"""
ACTIONS = """
actions:
  py: {command: [python3, -u, -c, "${script}"]}
"""
DASHBOARD = """
dashboards:
  ops:
    name: ops
    widgets:
      - {type: task_queue, title: the queue}
      - {type: log_view, title: output}
"""
PROGRESS = (
    "import sys, time\\n"
    "for p in (10, 55, 100):\\n"
    "    sys.stdout.write('\\\\rdownloading %3d%%' % p); sys.stdout.flush(); time.sleep(0.05)\\n"
    "sys.stdout.write('\\\\rdone\\\\n')\\n"
    "print('after the bar')\\n"
    "time.sleep(1000)"
)
ESCAPES = (
    "import time\\n"
    "for i in range(1, 21):\\n"
    "    print('\\\\x1b[2K\\\\r\\\\x1b[32mstep %d\\\\x1b[0m\\\\tok \\\\x1b]0;title\\\\x07' % i)\\n"
    "time.sleep(1000)"
)
CHATTY = (
    "import time\\n"
    "print('\\\\x1b[31mred\\\\x1b[0m line one')\\n"
    "print('second line with a NEEDLE')\\n"
    "print('third line')\\n"
    "time.sleep(1000)"
)
C1 = (
    "import sys\\n"
    "sys.stdout.write('\\\\x9b31mred\\\\x9b0m \\\\x9d0;pwned\\\\x9c \\\\x1b[1mbold\\\\x1b[0m end\\\\n')"
)
RETRIED = (
    "import os, sys, time\\n"
    "n = os.environ['L3_ATTEMPT']\\n"
    "print('try %s line' % n)\\n"
    "sys.stdout.write('try %s end, no newline' % n); sys.stdout.flush()\\n"
    "go = os.path.join(os.environ['L3_EXECUTION_DIR'], 'go')\\n"
    "while n == '1' and not os.path.exists(go): time.sleep(0.02)\\n"
    "if n == '1': sys.exit(1)\\n"
    "time.sleep(1000)"
)
FLOOD_LINES = 2_700_000  # 100 bytes each: 270 MB
FLOOD = (
    "import sys\\n"
    "block = ''.join('line %09d ' % n + 'x' * 84 + chr(10) for n in range(10000)).encode()\\n"
    f"for _ in range({FLOOD_LINES // 10000 - 1}): sys.stdout.buffer.write(block)\\n"
    "print('the last line')"
)


def workflows(**scripts: str) -> str:
    body = "\n".join(f"""
  {name}:
    name: {name}
    tasks:
      - {{id: {name}_task, action: py, parameters: {{script: "{script}"}}, retries: 1,
          retry_delay: 0}}""" for name, script in scripts.items())  # fmt: skip
    return f"workflows:{body}\n"


def console(rt) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False, actor="tester")


def log_file(rt, exec_id: str, task_id: str) -> Path | None:
    view = rt.execution(exec_id)
    task = next(t for t in view.tasks if t.task_id == task_id)
    return Path(task.log_path) if task.log_path else None


async def open_log_screen(app: ConsoleApp, pilot, exec_id: str) -> LogView:
    await until(lambda: app.selection is not None and app.selection[0] == exec_id, 30)
    await pilot.press("l")
    await until(lambda: isinstance(app.screen, TaskScreen), 30)
    log = app.screen.query_one(LogView)
    await until(lambda: not log._loading and log.key is not None, 30)
    return log


def logs_on_a_terminal(config: Path, state: Path, *args: str) -> str:
    """`l3tui logs ARGS` with its stdout on a pty (raw: no \\n -> \\r\\n translation)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([L3TUI, "--config", str(config), "--state", str(state), "logs",
                             *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return data.decode("utf-8", "replace")


def run_headless(config: Path, state: Path, workflow: str) -> str:
    out = subprocess.run([L3TUI, "--config", str(config), "--state", str(state), "run", workflow,
                          "--json"], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    return next(json.loads(line)["execution_id"] for line in out.stdout.splitlines()
                if '"execution_started"' in line)  # fmt: skip


async def test_a_progress_bar_is_one_line_in_its_last_state_in_the_console_and_logs(
    make_config, runtime_for, state_dir
):
    config = make_config(workflows(progress=PROGRESS), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=DASHBOARD)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("progress")
            exec_id = result.execution_id
            task = "progress_task"

            def printed() -> bool:
                path = log_file(rt, exec_id, task)
                return path is not None and path.exists() and b"after" in path.read_bytes()

            await until(printed, 30)
            # the engine: the task's last line, as the workflow tree shows it
            await until(lambda: rt.execution(exec_id).tasks[0].last_line == "after the bar", 30)
            log = await open_log_screen(app, pilot, exec_id)
            await until(lambda: "after the bar" in log.buffer.lines, 30)
            # terminal semantics: "done" overwrote the start of the bar's last state
            assert list(log.buffer.lines) == ["doneloading 100%", "after the bar"]
            await pilot.pause()
            assert "doneloading 100%" in screen_text(app)
            shown = logs_on_a_terminal(config, state_dir, exec_id, task)
            assert shown.splitlines() == ["doneloading 100%", "after the bar"]


async def test_output_with_escape_sequences_shows_each_line_once(make_config, runtime_for):
    config = make_config(workflows(escapes=ESCAPES), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=DASHBOARD)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("escapes")
            exec_id = result.execution_id
            pane = app.query_one(LogView)
            await until(lambda: any(line.startswith("step 20") for line in pane.buffer.lines), 30)
            # a second view opened once the output is there (the log screen): file and live
            # output must not both deliver it
            log = await open_log_screen(app, pilot, exec_id)
            await until(lambda: any(line.startswith("step 20") for line in log.buffer.lines), 30)
            await pilot.pause(0.6)  # anything read twice would have arrived by now
            expected = [f"step {i}\tok " for i in range(1, 21)]
            for view in (pane, log):
                assert list(view.buffer.lines) == expected
            assert all("\x1b" not in line for line in log.buffer.lines)


def test_logs_json_escapes_c1_controls(make_config, state_dir):
    config = make_config(workflows(c1=C1), actions=ACTIONS, scheduling=SCHEDULING)
    exec_id = run_headless(config, state_dir, "c1")
    out = subprocess.run([L3TUI, "--config", str(config), "--state", str(state_dir), "logs",
                          exec_id, "c1_task", "--json"], capture_output=True, timeout=60,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 0, out.stderr
    raw = out.stdout.decode("utf-8")
    assert not any(0x7F <= ord(ch) <= 0x9F or ch == "\x1b" for ch in raw), ascii(raw)
    assert "\\u009b31m" in raw and "\\u001b[1m" in raw  # escaped, like ESC
    record = json.loads(raw.splitlines()[0])
    assert record["line"] == "\x9b31mred\x9b0m \x9d0;pwned\x9c \x1b[1mbold\x1b[0m end"


def test_logs_on_a_terminal_strips_c1_controls(make_config, state_dir):
    config = make_config(workflows(c1=C1), actions=ACTIONS, scheduling=SCHEDULING)
    exec_id = run_headless(config, state_dir, "c1")
    shown = logs_on_a_terminal(config, state_dir, exec_id, "c1_task")
    assert not any(0x7F <= ord(ch) <= 0x9F or ch == "\x1b" for ch in shown), ascii(shown)
    # 8-bit sequences go whole, as 7-bit ones do: no parameters left over, no title text
    assert shown.splitlines() == ["red  bold end"]


@pytest.mark.slow
async def test_the_log_view_reads_a_bounded_tail_of_a_huge_log(make_config, runtime_for,
                                                               state_dir):
    config = make_config(workflows(flood=FLOOD), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=DASHBOARD)  # fmt: skip
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("flood")
        exec_id = result.execution_id
        async with asyncio.timeout(240):
            assert await rt.wait(exec_id) == "succeeded"
        path = log_file(rt, exec_id, "flood_task")
        assert path is not None and path.stat().st_size > 250 * 2**20
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            log = await open_log_screen(app, pilot, exec_id)
            await until(lambda: "the last line" in log.buffer.lines, 30)
            assert log.bytes_read <= log_view_module.TAIL_BYTES
            assert log.skipped_bytes > 250 * 2**20
            assert len(log.buffer.lines) <= log.config.max_lines
            first = log.buffer.lines[0]
            assert isinstance(first, log_view_module.Notice)
            assert "MiB earlier output not shown" in first
            assert f"l3tui logs {exec_id} flood_task" in first
            assert log.buffer.lines[-1] == "the last line"
            assert log.buffer.lines[-2] == "line 000009999 " + "x" * 84
    # `l3tui logs`, which that notice points to, streams all of it in bounded memory (it
    # read the whole file, then held its lines twice: over 1 GB for this one)
    code, err, peak_kib = await asyncio.to_thread(
        run_with_peak, [L3TUI, "--config", str(config), "--state", str(state_dir), "logs",
                        exec_id, "flood_task"])  # fmt: skip
    assert code == 0, err
    assert peak_kib < 300 * 1024, f"l3tui logs peaked at {peak_kib // 1024} MiB"


# Started by a small Python of its own: Linux carries the memory high-water mark of whoever
# spawns a process into that process's ru_maxrss, so a command spawned by this pytest (300 MB
# on CI after the earlier tests) would report pytest's peak, not its own.
PEAK_OF = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as err:
    proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err,
                            stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_with_peak(argv: list[str], timeout: float = 300) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of this one command, its own: not RUSAGE_CHILDREN
    (the largest child any earlier test reaped) nor the peak of the process that spawned it."""
    with tempfile.NamedTemporaryFile() as err:
        out = subprocess.run([sys.executable, "-c", PEAK_OF, err.name, *argv], timeout=timeout,
                             capture_output=True, text=True, check=True)  # fmt: skip
        code, peak_kib = map(int, out.stdout.split())
        return code, Path(err.name).read_text(errors="replace"), peak_kib


async def test_a_retried_task_shows_each_attempt_to_its_end(make_config, runtime_for):
    """The view follows the new attempt's file only after reading the old one to its end
    (its last line had no newline), with a rule between them; and it finds the new file as
    soon as the task prints to it, not at the next full refresh (5 min here)."""
    slow = DASHBOARD.replace("name: ops", "name: ops\n    refresh_interval: 300000")
    config = make_config(workflows(retried=RETRIED), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=slow)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            result = await rt.run_workflow("retried")
            app.post_message(SelectionChanged(result.execution_id, "retried_task"))
            pane = app.query_one(LogView)
            await until(lambda: pane.partial == "try 1 end, no newline", 30)
            assert list(pane.buffer.lines) == ["try 1 line"]
            (Path(pane.log_path).parent / "go").touch()  # attempt 1 may fail now
            await until(lambda: pane.partial == "try 2 end, no newline", 30)
            assert list(pane.buffer.lines) == ["try 1 line", "try 1 end, no newline",
                                               "── attempt 2 ──", "try 2 line"]  # fmt: skip
            assert pane.attempt == 2


async def test_an_older_picture_of_the_task_never_takes_the_view_back(make_config, runtime_for):
    """A refresh reads the committed snapshot, the output hub the live view: on a busy
    machine the first can lag (no log file yet, attempt 0) after the second showed attempt
    1. The view keeps the newer picture: no rule for "attempt 0", no line read twice."""
    slow = DASHBOARD.replace("name: ops", "name: ops\n    refresh_interval: 300000")
    config = make_config(workflows(retried=RETRIED), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=slow)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            result = await rt.run_workflow("retried")
            app.post_message(SelectionChanged(result.execution_id, "retried_task"))
            pane = app.query_one(LogView)
            await until(lambda: pane.partial == "try 1 end, no newline", 30)
            assert pane.key is not None
            pane.follow(pane.key, None, pane.task_name, attempt=0)  # the lagging picture
            pane.output_arrived(1)  # then the live one again
            await asyncio.sleep(0.3)
            await until(lambda: pane.partial == "try 1 end, no newline", 30)
            assert list(pane.buffer.lines) == ["try 1 line"]
            assert pane.attempt == 1
            (Path(pane.log_path).parent / "go").touch()
            await until(lambda: pane.partial == "try 2 end, no newline", 30)


def test_a_log_view_says_when_its_file_is_gone_or_was_truncated(tmp_path):
    path = tmp_path / "run" / "task.1.log"
    path.parent.mkdir()
    assert log_view_module.read_log(str(path), 0, 100).error == ""  # not written yet
    path.write_bytes(b"one\ntwo\n")
    first = log_view_module.read_log(str(path), 0, 100)
    path.write_bytes(b"new\n")  # shorter than what was read: truncated or replaced
    again = log_view_module.read_log(str(path), first.offset, 100)
    assert again.restarted and again.lines == ["new"]
    path.unlink()
    path.parent.rmdir()
    assert "gone" in log_view_module.read_log(str(path), again.offset, 100).error


async def test_slash_on_the_log_screen_filters_the_log(make_config, runtime_for):
    config = make_config(workflows(chatty=CHATTY), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=DASHBOARD)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("chatty")
            log = await open_log_screen(app, pilot, result.execution_id)
            await until(lambda: len(log.buffer.lines) == 3, 30)
            await pilot.press("slash", *"needle", "enter")
            await until(lambda: len(log.matches) == 1, 30)
            await pilot.pause()
            text = screen_text(app)
            assert "second line with a NEEDLE" in text and "third line" not in text
            assert isinstance(app.screen, TaskScreen)
            # nothing opened on the dashboard behind
            assert all(not box.display for pane in app.screen_stack[0].query(Pane)
                       for box in pane.query(".pane-filter"))  # fmt: skip
            await pilot.press("escape")  # clears the filter, stays on the log
            await until(lambda: log.filter is None, 30)
            assert isinstance(app.screen, TaskScreen) and len(log.matches) == 0
            await pilot.pause()
            assert "third line" in screen_text(app)
            await pilot.press("slash", *"THIRD")  # applies as typed; Escape in the box clears
            await until(lambda: len(log.matches) == 1, 30)
            await pilot.press("escape")
            await until(lambda: log.filter is None, 30)
            assert isinstance(app.screen, TaskScreen)
            assert not app.screen.query_one(".log-filter").display
            await pilot.press("escape")  # now back
            await until(lambda: not isinstance(app.screen, TaskScreen), 30)
