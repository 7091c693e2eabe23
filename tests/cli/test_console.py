"""`l3tui` (the console command) refuses what it cannot do in one line and a non-zero exit:
no terminal, a broken config, a bad keymap. No traceback reaches the user."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import BUNDLED, L3TUI


def run_l3tui(*args: str, env: dict[str, str] | None = None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([L3TUI, *args], capture_output=True, text=True, timeout=60,
                          env=full_env, cwd=cwd, stdin=subprocess.DEVNULL)  # fmt: skip


def test_console_without_a_terminal_says_what_to_use_instead(tmp_path):
    out = run_l3tui("--config", str(BUNDLED), "--state", str(tmp_path / "state"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "l3tui: the console needs a terminal; use `l3tui run WORKFLOW` for headless runs"
    ]


def test_console_with_a_broken_config_names_file_line_and_key(make_config, tmp_path):
    config = make_config("workflows:\n  w:\n    name: w\n    tasks: [{id: a, actoin: noop}]\n")
    out = run_l3tui("--config", str(config), "--state", str(tmp_path / "state"),
                    env={"L3TUI_FORCE_CONSOLE": "1"})  # fmt: skip
    assert out.returncode == 1
    assert "l3-workflows.yml:4:" in out.stderr and "actoin" in out.stderr
    assert "Traceback" not in out.stderr


def test_console_with_a_bad_keymap_lists_the_known_ids(tmp_path):
    out = run_l3tui("--config", str(BUNDLED), "--state", str(tmp_path / "state"),
                    env={"L3TUI_FORCE_CONSOLE": "1", "L3TUI_KEYMAP": "pasue=P"})  # fmt: skip
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("l3tui: L3TUI_KEYMAP: unknown key id 'pasue'") and "pause" in line
