"""Where l3tui looks for its config and its state: `--config DIR` > `$L3TUI_CONFIG` >
`./config` > `$XDG_CONFIG_HOME/l3tui`; `--state DIR` > `$L3TUI_STATE` > `$XDG_STATE_HOME/l3tui`."""

from __future__ import annotations

from pathlib import Path

import pytest

from l3tui.config import resolve_config_dir, resolve_state_dir


@pytest.fixture
def cwd_with_config(tmp_path: Path) -> Path:
    cwd = tmp_path / "project"
    (cwd / "config").mkdir(parents=True)
    (cwd / "config" / "l3-workflows.yml").write_text("workflows: {}\n", encoding="utf-8")
    return cwd


ENV = {"L3TUI_CONFIG": "/from/env", "XDG_CONFIG_HOME": "/xdg/config", "HOME": "/home/u"}


def test_config_flag_beats_everything(cwd_with_config: Path) -> None:
    assert resolve_config_dir("/from/flag", ENV, cwd_with_config) == Path("/from/flag")


def test_config_env_beats_local_config_dir(cwd_with_config: Path) -> None:
    assert resolve_config_dir(None, ENV, cwd_with_config) == Path("/from/env")


def test_local_config_dir_beats_xdg(cwd_with_config: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "L3TUI_CONFIG"}
    assert resolve_config_dir(None, env, cwd_with_config) == cwd_with_config / "config"


def test_local_config_dir_counts_only_with_a_workflows_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()  # a ./config of some other tool
    env = {"XDG_CONFIG_HOME": "/xdg/config"}
    assert resolve_config_dir(None, env, tmp_path) == Path("/xdg/config/l3tui")


def test_xdg_config_home_is_the_last_resort(tmp_path: Path) -> None:
    assert resolve_config_dir(None, {"XDG_CONFIG_HOME": "/xdg/config"}, tmp_path) == Path(
        "/xdg/config/l3tui"
    )


def test_empty_env_values_are_ignored(cwd_with_config: Path) -> None:
    env = {"L3TUI_CONFIG": "", "XDG_CONFIG_HOME": "/xdg/config"}
    assert resolve_config_dir("", env, cwd_with_config) == cwd_with_config / "config"


def test_tilde_is_expanded_in_flag_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_config_dir("~/cfg", {}, tmp_path) == tmp_path / "cfg"
    assert resolve_config_dir(None, {"L3TUI_CONFIG": "~/env"}, tmp_path) == tmp_path / "env"
    assert resolve_state_dir("~/st", {}) == tmp_path / "st"


def test_state_flag_beats_env_and_xdg() -> None:
    env = {"L3TUI_STATE": "/state/env", "XDG_STATE_HOME": "/xdg/state"}
    assert resolve_state_dir("/state/flag", env) == Path("/state/flag")


def test_state_env_beats_xdg() -> None:
    env = {"L3TUI_STATE": "/state/env", "XDG_STATE_HOME": "/xdg/state"}
    assert resolve_state_dir(None, env) == Path("/state/env")


def test_state_falls_back_to_xdg_state_home() -> None:
    assert resolve_state_dir(None, {"XDG_STATE_HOME": "/xdg/state"}) == Path("/xdg/state/l3tui")


def test_without_xdg_vars_the_home_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_config_dir(None, {}, tmp_path / "elsewhere") == tmp_path / ".config" / "l3tui"
    assert resolve_state_dir(None, {}) == tmp_path / ".local" / "state" / "l3tui"
