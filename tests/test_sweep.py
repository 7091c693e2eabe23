"""The process sweep every test relies on: whatever a test starts, in its own session or
not, is gone after the test, pass or fail."""

from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import SWEEP_VAR, live_processes, processes_with_env, sweep


def test_a_setsid_grandchild_is_found_by_its_marker_and_killed() -> None:
    marker = f"{SWEEP_VAR}={os.environ[SWEEP_VAR]}"
    # sh starts a sleeper in a new session and exits at once: an escapee of this test.
    subprocess.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 &"], check=True)
    deadline = time.monotonic() + 10
    while not (found := processes_with_env(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found, "the escapee should carry the test's marker"
    killed = sweep(marker)
    assert set(found) <= set(killed)
    assert live_processes(found) == []
