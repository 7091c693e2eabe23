"""One meaning per flag: `--state DIR` is the state directory in every command (history
included; its execution-state filter is `--status`), the old forms get a one-line usage
error saying what to type instead, and README's "Commands" table lists exactly the options
each command's parser has."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from l3tui.cli import COMMANDS, build_parser
from tests.conftest import L3TUI, REPO, write_config

COMMON = {"-h", "--help", "--config", "--state", "--bidi"}
"""Options README gives once for every command ("Every command takes ...")."""

REQUIRED = {"run": ["demo"], "show": ["x"], "logs": ["x"], "resume": ["x"], "submit": ["-"],
            "plan": ["-"], "schema": ["decision"], "cluster": ["local"]}

WORKFLOWS = """
workflows:
  ok:
    name: ok
    tasks:
      - {id: t, action: noop}
  broken:
    name: broken
    tasks:
      - {id: t, action: fail}
"""
ACTIONS = """
actions:
  fail: {command: [sh, -c, 'exit 3']}
"""


def subparsers() -> dict[str, object]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return dict(sub.choices)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_state_is_the_state_directory_in_every_command(command: str) -> None:
    args = build_parser().parse_args([command, "--state", "/srv/l3", *REQUIRED.get(command, [])])
    assert args.state == "/srv/l3"


def l3tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_history_reads_the_state_dir_given_after_it_and_filters_with_status(tmp_path: Path):
    config = write_config(tmp_path / "config", WORKFLOWS, actions=ACTIONS)
    state = tmp_path / "state"
    for workflow in ("ok", "broken"):
        l3tui("run", workflow, "--config", str(config), "--state", str(state))
    everything = l3tui("history", "--state", str(state), "--json")
    assert everything.returncode == 0, everything.stderr
    assert [r["workflow_id"] for r in json.loads(everything.stdout)] == ["broken", "ok"]
    failed = l3tui("history", "--state", str(state), "--status", "failed", "--json")
    assert failed.returncode == 0, failed.stderr
    assert [(r["workflow_id"], r["state"]) for r in json.loads(failed.stdout)] == [
        ("broken", "failed")]


@pytest.mark.parametrize(("args", "hint"), [
    (["history", "--state", "failed"], "use --status failed"),
    (["history", "--state-dir", "/srv/l3"], "--state DIR"),
    (["history", "--status", "broken"], "--status must be one of"),
])  # fmt: skip
def test_the_old_forms_get_one_line_saying_what_to_type(args: list[str], hint: str,
                                                        tmp_path: Path) -> None:  # fmt: skip
    env = {**os.environ, "L3TUI_STATE": str(tmp_path / "state")}
    out = subprocess.run([L3TUI, *args], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 2
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith("l3tui: ") and hint in line
    assert "Traceback" not in out.stderr


def readme_commands() -> dict[str, set[str]]:
    """Options in the first column of README's Commands table, by command."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for row in section.splitlines():
        if not row.startswith("| `l3tui"):
            continue
        first = row.split(" | ", 1)[0]
        for span in re.findall(r"`(l3tui[^`]*)`", first):
            words = span.replace("\\|", "|").split()
            command = words[1] if len(words) > 1 and words[1] in COMMANDS else "console"
            options = {w.strip("[]").split("=")[0] for w in words if w.lstrip("[").startswith("-")}
            found.setdefault(command, set()).update(options)
    return found


def test_readme_lists_each_commands_options_as_its_parser_has_them() -> None:
    documented = readme_commands()
    assert set(documented) == set(COMMANDS)
    for command, parser in subparsers().items():
        actions = [a for a in parser._actions if a.option_strings  # type: ignore[attr-defined]
                   and a.help != "==SUPPRESS=="]  # fmt: skip
        own = [set(a.option_strings) for a in actions if not set(a.option_strings) & COMMON]
        for strings in own:
            assert strings & documented[command], f"README does not list {strings} of {command}"
        known = set().union(*own) if own else set()
        assert documented[command] <= known, (
            f"README lists {documented[command] - known} for {command}, which has none")
