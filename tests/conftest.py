"""Shared fixtures: config directories built from YAML snippets, a Runtime on a temp state
dir, helpers that look at real processes with psutil, and the sweep that kills every process
a test started (its whole tree, escapees included), pass or fail."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

pytest_plugins = ("tests.snapshot_report",)  # snapshot failure reports outside the checkout

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "config"
L3TUI = shutil.which("l3tui", path=str(Path(os.sys.executable).parent)) or "l3tui"

SWEEP_VAR = "L3TUI_TEST_SWEEP"
"""Set for the duration of each test: every process it starts (an `l3tui` subprocess, a task,
a task's grandchildren, a `setsid` escapee) inherits it, so teardown can find them all."""


def processes_with_env(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (e.g. `VAR=value`)."""
    needle = marker.encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def sweep(marker: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process carrying `marker` until none is left (bounded); the pids."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in processes_with_env(marker) if live_processes([p])]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.05)
    return sorted(set(killed))


@pytest.fixture(autouse=True, scope="module")
def sweep_module_processes():  # type: ignore[no-untyped-def]
    """The same for module-scoped fixtures (tests/cli/test_history.py records its history
    once per module): they run before any test's marker is set, so they get the module's,
    and what they leave is killed when the module is done. Each test's own marker replaces
    it while the test runs."""
    marker = f"{SWEEP_VAR}={uuid.uuid4().hex}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SWEEP_VAR, marker.partition("=")[2])
        yield marker
    sweep(marker)


@pytest.fixture(autouse=True)
def sweep_processes(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every test: mark the processes it starts, and kill whatever of them is left at the
    end, pass or fail (a failed crash test once left `sleep`s running for 12 hours)."""
    marker = f"{SWEEP_VAR}={uuid.uuid4().hex}"
    monkeypatch.setenv(SWEEP_VAR, marker.partition("=")[2])
    yield marker
    sweep(marker)


DEFAULT_SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 4}
  execution: {grace_period: 1s, default_timeout: 60s}
"""


def write_config(
    root: Path,
    workflows: str,
    actions: str = "actions: {}\n",
    scheduling: str = DEFAULT_SCHEDULING,
    dashboard: str | None = None,
) -> Path:
    """A config directory holding the given YAML (dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "l3-workflows.yml").write_text(textwrap.dedent(workflows), encoding="utf-8")
    (root / "l3-actions.yml").write_text(textwrap.dedent(actions), encoding="utf-8")
    (root / "l3-scheduling.yml").write_text(textwrap.dedent(scheduling), encoding="utf-8")
    if dashboard is not None:
        (root / "l3-dashboard.yml").write_text(textwrap.dedent(dashboard), encoding="utf-8")
    return root


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    def make(workflows: str, **kwargs: str) -> Path:
        return write_config(tmp_path / "config", workflows, **kwargs)

    return make


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def runtime_for(state_dir: Path) -> Callable[..., object]:
    """`async with runtime_for(config_dir) as rt:` a real Runtime on a temp state dir."""
    from contextlib import asynccontextmanager

    from l3tui.config import load_config
    from l3tui.runtime import Runtime

    @asynccontextmanager
    async def factory(config_dir: Path, **kwargs: object) -> AsyncIterator[Runtime]:
        async with Runtime(load_config(config_dir), state_dir, actor="test", **kwargs) as rt:
            yield rt

    return factory


def live_processes(pids: list[int]) -> list[psutil.Process]:
    """Processes among `pids` that are alive (a zombie is dead, only not yet reaped)."""
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def group_members(pgid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (OSError, psutil.Error):
            pass
    return out


def descendants_by_marker(marker: str) -> list[int]:
    """Pids of live processes of this test whose command line contains `marker`. Only this
    test's (they carry its sweep marker): the same suite running in another checkout at the
    same time starts the same `sleep 1005`s, and a test that counted those sent Ctrl-C to
    an `l3tui run` still importing its modules."""
    mine = os.environ.get(SWEEP_VAR)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or []) and (
                    mine is None or f"{SWEEP_VAR}={mine}" in _environ(proc.pid)):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def _environ(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read().decode(errors="replace").split("\0")
    except OSError:
        return []
