"""The process sweep every test relies on: whatever a test starts, in its own session or
not, is gone after the test, pass or fail."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

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


@pytest.fixture(scope="module")
def module_escapee() -> list[int]:
    """A module-scoped fixture starting a process (as tests/cli/test_history.py's does),
    before any test's own marker exists."""
    before = set(processes_with_env(f"{SWEEP_VAR}={os.environ.get(SWEEP_VAR, '-')}"))
    subprocess.run(["sh", "-c", "setsid sleep 302 >/dev/null 2>&1 &"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = set(processes_with_env(f"{SWEEP_VAR}={os.environ.get(SWEEP_VAR, '-')}"))
        if found - before:
            return sorted(found - before)
        time.sleep(0.05)
    return []


def test_processes_of_module_scoped_fixtures_carry_the_modules_marker(
        module_escapee: list[int], sweep_module_processes: str, sweep_processes: str) -> None:
    assert module_escapee, "the module fixture's process should carry a sweep marker"
    assert sweep_module_processes != sweep_processes
    assert set(module_escapee) <= set(processes_with_env(sweep_module_processes))
