"""history, show, logs, report and resume as a person and a script use them: human output,
--json, filters, id prefixes, control sequences removed on a terminal, -f following a
running task, reports in md/json/html, and one-line errors."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import L3TUI, write_config

WORKFLOWS = """
workflows:
  colours:
    name: "ألوان"
    tasks:
      - {id: paint, action: paint}
      - {id: count, action: count, dependencies: [paint]}
  broken:
    name: broken
    tasks:
      - {id: fails, action: fail}
  ticking:
    name: ticking
    tasks:
      - {id: tick, action: tick}
"""
ACTIONS = r"""
actions:
  paint:
    command: [sh, -c, 'printf "\033]0;pwned\007\033[31mred\033[0m line\n"; echo "L3METRIC analyzer_issues=4"']
  count:
    command: [sh, -c, 'echo one; echo two; echo three; echo "L3METRIC tests_total=120"']
  fail:
    command: [sh, -c, 'echo boom; exit 2']
  tick:
    command: [sh, -c, 'for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.25; done']
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict[str, object]:
    """Two colour runs and a failure, recorded once for the whole module."""
    root = tmp_path_factory.mktemp("history")
    config = write_config(root / "config", WORKFLOWS, actions=ACTIONS)
    state = root / "state"
    ids = {}
    for workflow in ("colours", "broken", "colours"):
        result = run(config, state, "run", workflow, "--json")
        ids.setdefault(workflow, []).append(
            next(json.loads(line)["execution_id"] for line in result.stdout.splitlines()
                 if '"execution_started"' in line))
    return {"config": config, "state": state, "ids": ids}


def run(config: Path, state: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, "--config", str(config), "--state", str(state), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          **kwargs)


def test_history_lists_newest_first_with_filters(history):
    config, state, ids = history["config"], history["state"], history["ids"]
    out = run(config, state, "history")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "WORKFLOW", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == [ids["colours"][1], ids["broken"][0],
                                                       ids["colours"][0]]
    rows = json.loads(run(config, state, "history", "--status", "failed", "--json").stdout)
    assert [r["id"] for r in rows] == ids["broken"]
    rows = json.loads(run(config, state, "history", "--workflow", "colours", "--limit", "1",
                          "--json").stdout)
    assert [r["id"] for r in rows] == [ids["colours"][1]]
    assert json.loads(run(config, state, "history", "--since", "1d", "--json").stdout)
    future = run(config, state, "history", "--since", "2099-01-01")
    assert future.stdout.strip() == "no executions match"
    bad = run(config, state, "history", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_show_accepts_a_unique_prefix_and_explains_ambiguity(history):
    config, state, ids = history["config"], history["state"], history["ids"]
    exec_id = ids["broken"][0]
    out = run(config, state, "show", exec_id[:-1])
    assert out.returncode == 0
    assert f"execution   {exec_id}" in out.stdout and "definition  " in out.stdout
    assert "fails" in out.stdout and "exit code 2" in out.stdout
    detail = json.loads(run(config, state, "show", exec_id, "--json").stdout)
    assert detail["tasks"][0]["exit_code"] == 2 and detail["definition_hash"]
    ambiguous = run(config, state, "show", "2")
    assert ambiguous.returncode == 2 and "ambiguous" in ambiguous.stderr
    missing = run(config, state, "show", "nope")
    assert missing.returncode == 2 and "no execution matches 'nope'" in missing.stderr


def test_logs_strip_control_sequences_only_on_a_terminal(history):
    config, state, ids = history["config"], history["state"], history["ids"]
    exec_id = ids["colours"][0]
    piped = run(config, state, "logs", exec_id, "paint")
    assert "\x1b[31mred" in piped.stdout  # a pipe gets the bytes
    master, slave = pty.openpty()
    proc = subprocess.Popen([L3TUI, "--config", str(config), "--state", str(state), "logs",
                             exec_id, "paint"], stdout=slave, stderr=slave,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = data.decode()
    assert "red line" in text
    assert "\x1b" not in text and "pwned" not in text


def test_logs_grep_and_all_tasks(history):
    config, state, ids = history["config"], history["state"], history["ids"]
    exec_id = ids["colours"][1]
    everything = run(config, state, "logs", exec_id)
    assert "==> count attempt 1 (succeeded) <==" in everything.stdout
    assert "two" in everything.stdout
    grep = run(config, state, "logs", exec_id, "--grep", "^t(wo|hree)$", "--json")
    assert [json.loads(line)["line"] for line in grep.stdout.splitlines()] == ["two", "three"]
    nothing = run(config, state, "logs", exec_id, "--grep", "zebra")
    assert nothing.returncode == 1
    unknown = run(config, state, "logs", exec_id, "nope")
    assert unknown.returncode == 2 and "no task 'nope'" in unknown.stderr


def test_logs_follow_a_running_task_until_it_ends(history, tmp_path):
    config = history["config"]
    state = tmp_path / "state"
    runner = subprocess.Popen([L3TUI, "--config", str(config), "--state", str(state), "run",
                               "ticking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            listing = run(config, state, "history", "--json") if (state / "l3tui.db").exists() \
                else None
            if listing is not None and listing.returncode == 0 and json.loads(listing.stdout):
                exec_id = json.loads(listing.stdout)[0]["id"]
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        follow = run(config, state, "logs", exec_id, "tick", "-f")
    finally:
        runner.wait(timeout=30)
    assert follow.returncode == 0
    assert [line for line in follow.stdout.splitlines() if line.startswith("tick")] == \
        [f"tick {i}" for i in range(1, 7)]


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_report_shows_rates_durations_and_business_metrics(history, tmp_path, fmt):
    config, state = history["config"], history["state"]
    target = tmp_path / f"report.{fmt}"
    out = run(config, state, "report", "--since", "7d", "--format", fmt, "-o", str(target))
    assert out.returncode == 0, out.stderr
    text = target.read_text(encoding="utf-8")
    if fmt == "json":
        report = json.loads(text)
        rates = {w["workflow_id"]: w["success_rate_pct"] for w in report["workflows"]}
        assert rates == {"colours": 100.0, "broken": 0.0}
        assert report["most_failing_tasks"][0]["task_id"] == "fails"
        metrics = report["business"]["task_metrics"]
        assert metrics["analyzer_issues"]["last"] == 4 and metrics["tests_total"]["count"] == 2
        assert report["business"]["recovery"]["broken"]["broken_since"]
    elif fmt == "md":
        assert "| colours | 2 | 2 | 0 | 0 | 100.0% |" in text
        assert "analyzer_issues" in text and "┌" in text  # a plotext chart
        assert "\x1b" not in text
    else:
        assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<polyline" in text
        assert "<table>" in text


def test_resume_refuses_a_succeeded_execution_in_one_line(history):
    config, state, ids = history["config"], history["state"], history["ids"]
    out = run(config, state, "resume", ids["colours"][0])
    assert out.returncode == 2
    assert out.stderr.strip().endswith("succeeded; there is nothing to resume")


def test_resume_of_a_failed_execution_reruns_only_the_failed_task(history, tmp_path):
    config = history["config"]
    state = tmp_path / "state"
    first = run(config, state, "run", "colours")
    assert first.returncode == 0
    original = json.loads(run(config, state, "history", "--json").stdout)[0]["id"]
    state_db = state / "l3tui.db"
    import sqlite3

    with sqlite3.connect(state_db) as conn:  # pretend `count` failed
        conn.execute("UPDATE task_runs SET state = 'failed' WHERE task_id = 'count'")
        conn.execute("UPDATE executions SET state = 'failed'")
    resumed = run(config, state, "resume", original, "--json")
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    started = [e["task_id"] for e in events if e["kind"] == "task_started"]
    assert started == ["count"]
    rows = json.loads(run(config, state, "history", "--json").stdout)
    assert rows[0]["parent_id"] == original and rows[0]["state"] == "succeeded"
