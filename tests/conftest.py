"""Shared fixtures: config directories built from YAML snippets, a Runtime on a temp state
dir, and helpers that look at real processes with psutil."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "config"
L3TUI = shutil.which("l3tui", path=str(Path(os.sys.executable).parent)) or "l3tui"

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
    """Pids of live processes whose command line contains `marker`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found
