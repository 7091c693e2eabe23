"""Ctrl-C while the daemon starts a run: `l3tui run` beside a daemon submits the run and
follows it; its Ctrl-C handler was installed only once the daemon had answered the start,
and the daemon starts the first tasks before that answer arrives. A Ctrl-C in between (CI
caught it: the test below `tests/daemon` pressed it once the task ran) printed "l3tui:
interrupted", exited 130 and left the run going in the daemon, its processes included.

Here the Ctrl-C comes exactly then, every time: a `start` that sends SIGINT to its own
process as the daemon's answer arrives, through the real `follow_attached`, in a process of
its own (a KeyboardInterrupt must not reach pytest)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.conftest import Daemon, descendants_by_marker
from tests.daemon.test_daemon import history, poll

CTRL_C_AS_IT_STARTS = """
import asyncio, os, signal, sys
from pathlib import Path
from l3tui.commands._attached import follow_attached

async def start(remote):
    result = await remote.run_workflow("sleeper", trigger="cli")
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the answer arrives
    await asyncio.sleep(0.2)
    return result

sys.exit(asyncio.run(follow_attached(Path(sys.argv[1]), start, "plain", False)))
"""


def test_ctrl_c_while_the_daemon_starts_the_run_cancels_it_there(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon().start()
    run = subprocess.run([sys.executable, "-c", CTRL_C_AS_IT_STARTS, str(daemon.state)],
                         env=daemon.env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 130, run.stderr
    assert "asking the daemon to cancel the run once it has started it" in run.stderr
    assert "Traceback" not in run.stderr
    # the daemon cancelled it: its task's process is gone, the record says so
    poll(lambda: not descendants_by_marker("sleep 1021"), timeout=60)
    poll(lambda: history(daemon)[0]["state"] == "cancelled", timeout=60)
