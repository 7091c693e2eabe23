"""`l3tui validate` as a user runs it (a real process): the summary, `--json`, `--explain`,
usage errors, warnings, and Arabic names passing through unchanged."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import yaml

from l3tui.config import Config, load_config
from l3tui.config.schema import TaskDef
from l3tui.engine.scheduling.cron import CronSchedule

TESTS = Path(__file__).resolve().parents[1]
BUNDLED = TESTS.parent / "config"
BASE = TESTS / "data" / "config" / "_base"
L3TUI = Path(sys.executable).parent / "l3tui"
ARABIC = re.compile("[\u0600-\u06ff]")


def validate(*args: str, tz: str = "UTC") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": tz}
    env.pop("L3TUI_CONFIG", None)
    return subprocess.run(
        [str(L3TUI), "validate", *args], capture_output=True, text=True, timeout=60, env=env
    )


def next_fires(cron: str, zone: str, now: datetime) -> list[datetime]:
    return list(islice(CronSchedule(cron, zone).fires_after(now), 3))


def fire_text(fires: list[datetime]) -> str:
    return ", ".join(f"{f:%a %Y-%m-%d %H:%M %z}" for f in fires)


def test_summary_lists_workflows_templates_schedules_and_dashboards() -> None:
    """Bundled config, machine timezone Europe/Berlin (the bundled schedules name none)."""
    config = load_config(BUNDLED)
    before = datetime.now(UTC)
    proc = validate("--config", str(BUNDLED), tz="Europe/Berlin")
    after = datetime.now(UTC)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.rstrip().endswith("OK: configuration is valid")

    wf = config.workflows
    assert f"workflows ({len(wf.workflows)})" in out
    for key, w in wf.workflows.items():
        count = f"{len(w.tasks)} task" + ("s" if len(w.tasks) != 1 else "")
        assert re.search(rf"^  {key} +{count}\b.*{re.escape(w.name)}$", out, re.M), key
    assert re.search(r"^  backup_restore +1 task +params: target\*, source ", out, re.M)
    assert re.search(r"^  flutter_build_flavor +1 task +params: flavor ", out, re.M)
    for key, d in config.dashboard.dashboards.items():
        assert re.search(rf"^  {key} +{len(d.widgets)} widgets  {re.escape(d.name)}$", out, re.M)

    jobs = config.scheduling.recurring_tasks
    assert f"recurring tasks ({len(jobs)}), next three fire times" in out
    for job in jobs:
        line = next(x for x in out.splitlines() if x.startswith(f"  {job.id} "))
        assert "Europe/Berlin" in line
        # "now" moved while the process ran: the times are those of one of the two ends.
        candidates = {fire_text(next_fires(job.cron, "Europe/Berlin", t)) for t in (before, after)}
        assert any(line.endswith(c) for c in candidates), (line, candidates)


def test_summary_uses_the_scheduling_timezone_over_the_machines(tmp_path: Path) -> None:
    """The base config sets `scheduling.timezone: Europe/Berlin`; the machine says Riyadh."""
    before = datetime.now(UTC)
    proc = validate("--config", str(BASE), "--json", tz="Asia/Riyadh")
    after = datetime.now(UTC)
    assert proc.returncode == 0, proc.stderr
    [job] = json.loads(proc.stdout)["recurring"]
    assert (job["id"], job["cron"], job["timezone"]) == ("nightly", "0 2 * * *", "Europe/Berlin")
    fires = [datetime.fromisoformat(f) for f in job["next"]]
    assert all(
        f.astimezone(CronSchedule("0 2 * * *", "Europe/Berlin").zone).hour == 2 for f in fires
    )
    assert fires in (next_fires("0 2 * * *", "Europe/Berlin", t) for t in (before, after))


def test_json_summary_has_counts_params_and_fire_times() -> None:
    config = load_config(BUNDLED)
    before = datetime.now(UTC)
    proc = validate("--config", str(BUNDLED), "--json", tz="Europe/Berlin")
    after = datetime.now(UTC)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {k: v["tasks"] for k, v in data["workflows"].items()} == {
        k: len(w.tasks) for k, w in config.workflows.workflows.items()
    }
    assert data["templates"]["backup_restore"]["params"] == {
        "target": {"required": True, "type": "path", "default": None},
        "source": {"required": False, "type": "path", "default": "${l3.state_dir}/l3tui.db"},
    }
    assert {k: v["widgets"] for k, v in data["dashboards"].items()} == {
        k: len(d.widgets) for k, d in config.dashboard.dashboards.items()
    }
    assert [r["id"] for r in data["recurring"]] == [j.id for j in config.scheduling.recurring_tasks]
    for job in data["recurring"]:
        assert job["timezone"] == "Europe/Berlin"
        expected = [
            [f.isoformat() for f in next_fires(job["cron"], "Europe/Berlin", t)]
            for t in (before, after)
        ]
        assert job["next"] in expected
    assert data["files"] == dict.fromkeys(
        ["l3-workflows.yml", "l3-scheduling.yml", "l3-dashboard.yml", "l3-actions.yml"], True
    )


def test_json_on_an_invalid_config_prints_every_error_as_json(tmp_path: Path) -> None:
    """Issue 11: `validate --json` printed nothing on stdout for an invalid config. Now the
    errors come as JSON on stdout (the usual lines still go to stderr), exit 1."""
    case = TESTS / "data" / "config" / "errors_in_several_files"
    config = tmp_path / "config"
    shutil.copytree(BASE, config)
    for path in case.glob("*.yml"):
        shutil.copyfile(path, config / path.name)
    (config / "l3-workflows.yml").chmod(0o666)  # a warning as well
    proc = validate("--config", str(config), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["valid"] is False and data["config"] == str(config)
    expected = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    shown = [
        f"{Path(e['file']).name}:{e['line']}:{e['col']}: {e['key']}: {e['message']}"
        for e in data["errors"]
    ]
    assert shown == expected
    assert {e["severity"] for e in data["errors"]} == {"error"}
    [warning] = data["warnings"]
    assert warning["file"] == str(config / "l3-workflows.yml")
    assert "writable by other users" in warning["message"]
    assert [line for line in proc.stderr.splitlines() if ": warning: " not in line][:-1] == [
        f"{config}/{line}" for line in expected
    ]


def test_json_when_the_config_directory_is_missing(tmp_path: Path) -> None:
    proc = validate("--config", str(tmp_path / "nowhere"), "--json")
    assert proc.returncode == 1
    [error] = json.loads(proc.stdout)["errors"]
    assert error["file"] == str(tmp_path / "nowhere")
    assert "config directory" in error["message"] and "not found" in error["message"]
    assert "Traceback" not in proc.stderr


def test_explain_cron_gives_the_rules_and_examples_the_scheduler_keeps() -> None:
    """Issue 11: the DST rule, one example per case; each example is checked here against
    the fire times the scheduler itself computes."""
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    from l3tui.config.cronexpr import CRON_EXAMPLES

    proc = validate("--explain", "cron")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    for phrase in (
        "@hourly (0 * * * *)", "@reboot is not supported",
        "when either field starts with *, a day must match both",
        "fixed-time job, neither field starts with * (30 2, 0 1-5/2, 0 0-23): follows the "
        "wall clock", "wildcard job, either field starts with *",
    ):  # fmt: skip
        assert phrase in out, phrase
    assert len(CRON_EXAMPLES) >= 6
    for example in CRON_EXAMPLES:
        zone, day = ZoneInfo(example.zone), date.fromisoformat(example.day)
        start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=1)
        fires = CronSchedule(example.expr, zone).fires_between(start, start + timedelta(days=3))
        that_day = [f for f in fires if f.date() == day]
        early = tuple(f"{f:%H:%M %z}" for f in that_day if f.hour < 5)
        assert (early, len(that_day)) == (example.early_fires, example.fires_that_day), example
        assert f"{example.expr} {example.zone} {example.day}: {example.early_fires[0]}" in out


def test_cron_shortcuts_validate_and_reboot_is_refused_with_why(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(BASE, config)
    path = config / "l3-scheduling.yml"
    text = path.read_text(encoding="utf-8")
    assert 'cron: "0 2 * * *"' in text
    path.write_text(text.replace('cron: "0 2 * * *"', "cron: '@daily'"), encoding="utf-8")
    proc = validate("--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"@daily\s+Europe/Berlin\s+\w{3} \d{4}-\d\d-\d\d 00:00 \+0[12]00", proc.stdout)
    path.write_text(text.replace('cron: "0 2 * * *"', "cron: '@reboot'"), encoding="utf-8")
    proc = validate("--config", str(config))
    assert proc.returncode == 1
    assert "cron: @reboot is not supported: l3tui fires schedules only while" in proc.stderr


def test_explain_prints_the_key_docstring() -> None:
    proc = validate("--explain", "retry_backoff")
    assert proc.returncode == 0, proc.stderr
    description = TaskDef.model_fields["retry_backoff"].description
    assert description
    assert "l3-workflows.yml: workflows.tasks.retry_backoff = 2.0" in proc.stdout
    assert f"    {description}" in proc.stdout.splitlines()


def test_explain_of_an_unknown_key_is_a_usage_error() -> None:
    proc = validate("--explain", "nosuchkey")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "l3tui: no config key named 'nosuchkey'\n"


def test_unknown_option_is_a_usage_error() -> None:
    proc = validate("--bogus")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "l3tui: unrecognized arguments: --bogus (see: l3tui --help)"
    ]


def test_missing_config_dir_is_one_line_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = validate("--config", str(missing))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"l3tui: config directory {missing} not found (from --config); give one with --config DIR\n"
    )


def test_config_file_writable_by_others_warns_but_validates(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(BUNDLED, config)
    for path in config.iterdir():
        path.chmod(0o644)
    actions = config / "l3-actions.yml"
    actions.chmod(0o646)
    proc = validate("--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{actions}:1:1: warning: file is writable by other users, and it decides what "
        f"commands run (chmod o-w {actions})"
    ]
    assert "OK: configuration is valid" in proc.stdout


# ------------------------------------------------------------------ Arabic round trip


def raw_texts(config_dir: Path) -> dict[str, str]:
    """Every name, description and title in the YAML as written, by where it is."""

    def load(name: str) -> Any:
        return yaml.safe_load((config_dir / name).read_text(encoding="utf-8"))

    out: dict[str, str] = {}
    wf = load("l3-workflows.yml")
    for section in ("workflows", "templates"):
        for key, w in wf.get(section, {}).items():
            out[f"{section}.{key}.name"] = w["name"]
            if "description" in w:
                out[f"{section}.{key}.description"] = w["description"]
            for task in w["tasks"]:
                if "name" in task:
                    out[f"{section}.{key}.{task['id']}.name"] = task["name"]
    for job in load("l3-scheduling.yml")["scheduling"]["recurring_tasks"]:
        out[f"recurring.{job['id']}.name"] = job["name"]
    dash = load("l3-dashboard.yml")
    for key, d in dash["dashboards"].items():
        out[f"dashboards.{key}.name"] = d["name"]
        for index, widget in enumerate(d["widgets"]):
            out[f"dashboards.{key}.{index}.title"] = widget["title"]
    for rule in dash.get("alerts", []):
        out[f"alerts.{rule['id']}.name"] = rule["name"]
    return out


def loaded_texts(config: Config) -> dict[str, str]:
    out: dict[str, str] = {}
    for section in ("workflows", "templates"):
        for key, w in getattr(config.workflows, section).items():
            out[f"{section}.{key}.name"] = w.name
            out[f"{section}.{key}.description"] = w.description
            for task in w.tasks:
                out[f"{section}.{key}.{task.id}.name"] = task.name
    for job in config.scheduling.recurring_tasks:
        out[f"recurring.{job.id}.name"] = job.name
    for key, d in config.dashboard.dashboards.items():
        out[f"dashboards.{key}.name"] = d.name
        for index, widget in enumerate(d.widgets):
            out[f"dashboards.{key}.{index}.title"] = widget.title
    for rule in config.dashboard.alerts:
        out[f"alerts.{rule.id}.name"] = rule.name
    return out


def test_arabic_names_round_trip_through_the_loader() -> None:
    raw = raw_texts(BUNDLED)
    loaded = loaded_texts(load_config(BUNDLED))
    assert {k: loaded.get(k) for k in raw} == raw
    assert sum(1 for text in raw.values() if ARABIC.search(text)) >= 100


@pytest.mark.parametrize("bidi", ["off", "on"])
def test_validate_json_prints_arabic_unchanged(bidi: str) -> None:
    """Not escaped (ensure_ascii off), not reshaped: JSON is for programs, not eyes."""
    proc = validate("--config", str(BUNDLED), "--json", "--bidi", bidi)
    assert proc.returncode == 0, proc.stderr
    assert "\\u06" not in proc.stdout
    data = json.loads(proc.stdout)
    raw = raw_texts(BUNDLED)
    for key, w in data["workflows"].items():
        assert w["name"] == raw[f"workflows.{key}.name"]
        assert w["name"] in proc.stdout
    for key, t in data["templates"].items():
        assert t["name"] == raw[f"templates.{key}.name"]
    for key, d in data["dashboards"].items():
        assert d["name"] == raw[f"dashboards.{key}.name"]
    assert ARABIC.search(data["workflows"]["system_health_check"]["name"])
