"""Shared fixtures: config directories built from YAML snippets, a Runtime on a temp state
dir, helpers that look at real processes with psutil, and the sweep that kills every process
a test started (its whole tree, escapees included), pass or fail."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------ a real daemon process
# A real `l3tui daemon` on a temp state dir, started by a fixture that also stops it
# (SIGTERM, then SIGKILL) and sweeps its process tree, pass or fail. Used by tests/daemon/,
# tests/coordinator/ and tests/faults/.

DAEMON_WORKFLOWS = """
workflows:
  sleeper:
    name: "نائم"
    tasks:
      - {id: nap, name: "قيلولة", action: nap, parameters: {seconds: 1021}}
  quick:
    name: quick
    tasks:
      - {id: one, action: say, parameters: {text: one}}
      - {id: two, action: say, parameters: {text: two}, dependencies: [one]}
  short_nap:
    name: short nap
    tasks:
      - {id: nap, action: nap, parameters: {seconds: 2.0217}}
"""
DAEMON_ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
  say: {command: [echo, "${text}"]}
"""
DAEMON_SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 8, max_cpu_usage: 100, max_memory_usage: 100}
  execution: {grace_period: 1s, default_timeout: 600s}
"""


@dataclass
class Daemon:
    """One daemon process and where it lives."""

    config: Path
    state: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def start(self, *extra: str, wait_s: float = 60.0) -> Daemon:
        from l3tui.daemon.client import daemon_answers

        self.log = self.state.parent / f"daemon-{time.monotonic_ns()}.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [L3TUI, "daemon", "--config", str(self.config), "--state", str(self.state),
                 *extra], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + wait_s
        while not daemon_answers(self.state):
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited {self.proc.returncode}: "
                                     f"{self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no daemon after {wait_s}s: {self.output()[-2000:]}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([L3TUI, "--state", str(self.state), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    runtime_dir = tmp_path / "xdg"
    runtime_dir.mkdir(mode=0o700)
    return {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}


@pytest.fixture
def make_daemon(tmp_path: Path, daemon_env: dict[str, str],
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Daemon]]:  # fmt: skip
    """`make_daemon(workflows=..., scheduling=...)`: a Daemon (not started)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", daemon_env["XDG_RUNTIME_DIR"])
    made: list[Daemon] = []

    def make(workflows: str = DAEMON_WORKFLOWS, actions: str = DAEMON_ACTIONS,
             scheduling: str = DAEMON_SCHEDULING) -> Daemon:  # fmt: skip
        config = write_config(tmp_path / f"config{len(made)}", workflows, actions, scheduling)
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        daemon = Daemon(config, state, daemon_env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop(signal.SIGTERM, wait_s=15)
        daemon.kill()
