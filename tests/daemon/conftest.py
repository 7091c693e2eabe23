"""A real `l3tui daemon` process on a temp state dir, started by a fixture that also stops it
(SIGTERM, then SIGKILL) and sweeps its process tree, pass or fail."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from l3tui.daemon.client import daemon_answers
from tests.conftest import L3TUI, write_config

WORKFLOWS = """
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
ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
  say: {command: [echo, "${text}"]}
"""
SCHEDULING = """
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

    def make(workflows: str = WORKFLOWS, actions: str = ACTIONS,
             scheduling: str = SCHEDULING) -> Daemon:  # fmt: skip
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


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    """A started daemon with the default workflows."""
    return make_daemon().start()
