"""`l3tui` as a person starts it: in a 100x30 tmux session with the bundled config. Wait for
the first paint, run a workflow with real keys, and read the screen back with capture-pane:
the pane titles are there, a task of the started workflow shows as running, and q asks
before it cancels what runs."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from l3tui import textdir
from tests.conftest import BUNDLED, L3TUI

TITLES = ["استخدام الموارد", "قائمة المهام", "حالة سير العمل", "الموارد الآن", "التنبيهات"]


class Tmux:
    """A private tmux server (its own socket) running one window."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                             text=True, timeout=30, check=True)  # fmt: skip
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "l3")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "l3", *keys)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s; the screen was:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(f"l3test-{os.getpid()}-{tmp_path.name}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True,
                   timeout=10)  # fmt: skip


@pytest.mark.slow
def test_console_in_tmux_shows_the_panes_and_a_running_task(tmux: Tmux, tmp_path: Path):
    state = tmp_path / "state"
    command = (f"{L3TUI} --config {BUNDLED} --state {state} --bidi on; "
               "echo L3TUI-EXITED $?; sleep 60")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "TMUX")}
    env["TERM"] = "xterm-256color"
    subprocess.run(["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s",
                    "l3", "-x", "100", "-y", "30", command], check=True, timeout=10,
                   env=env, cwd=tmp_path)  # fmt: skip
    shown = [textdir.display(title) for title in TITLES]
    first = tmux.wait_for(lambda s: all(t in s for t in shown))
    assert "0 running" in first

    tmux.keys("n")
    tmux.wait_for(lambda s: "Run a workflow" in s)
    tmux.keys("demo_pipeline")
    tmux.keys("Enter")
    task_names = [textdir.display(n) for n in ("فحص الأسلوب", "اختبارات الوحدات")]
    running = tmux.wait_for(
        lambda s: any("running" in line and any(n in line for n in task_names)
                      for line in s.splitlines())
    )  # fmt: skip
    assert "started demo_pipeline" in running or "▶" in running

    tmux.keys("q")
    after = tmux.wait_for(lambda s: "Quit l3tui?" in s or "L3TUI-EXITED" in s)
    if "Quit l3tui?" in after:  # still running: it asks before cancelling
        tmux.keys("y")
    done = tmux.wait_for(lambda s: "L3TUI-EXITED" in s, timeout=30)
    assert "L3TUI-EXITED 0" in done
