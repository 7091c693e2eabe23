"""`l3tui schedules` as a user runs it: a DST weekend previewed before it happens, with
local times, offsets and UTC from the scheduler's own code; JSON for tools; disabled tasks
marked; bad input in one line; and no Textual import."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import L3TUI, write_config

WORKFLOWS = """
workflows:
  nightly:
    name: "فحص ليلي"
    tasks:
      - {id: t, action: noop}
    triggers: [{cron: "30 2 * * *"}]
"""
SCHEDULING = """
scheduling:
  timezone: Europe/Berlin
  recurring_tasks:
    - {id: at_two, name: "الثانية ليلاً", cron: "0 2 * * *", workflow: nightly}
    - {id: hourly, cron: "0 * * * *", workflow: nightly, catch_up: skip}
    - {id: riyadh, cron: "0 2 * * *", workflow: nightly, timezone: Asia/Riyadh}
"""


def schedules(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path / "config", WORKFLOWS, scheduling=SCHEDULING)
    return subprocess.run([L3TUI, "schedules", "--config", str(config), "--state",
                           str(tmp_path / "state"), *args], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def test_json_preview_of_the_fall_back_night(tmp_path):
    done = schedules(tmp_path, "--from", "2026-10-24T12:00+02:00", "--count", "3", "--json")
    assert done.returncode == 0, done.stderr
    listing = {s["id"]: s for s in json.loads(done.stdout)["schedules"]}
    assert list(listing) == ["at_two", "hourly", "riyadh", "nightly@cron"]
    assert [f["local"] for f in listing["at_two"]["next"]] == [
        "2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00", "2026-10-27T02:00:00+01:00"]
    assert listing["at_two"]["next"][0]["utc"] == "2026-10-25T00:00:00+00:00"
    assert listing["at_two"]["name"] == "الثانية ليلاً"
    assert listing["riyadh"]["timezone"] == "Asia/Riyadh"
    assert listing["riyadh"]["next"][0]["local"] == "2026-10-25T02:00:00+03:00"
    assert listing["hourly"]["follows"] == "elapsed time"
    assert listing["nightly@cron"]["next"][0]["local"] == "2026-10-25T02:30:00+02:00"


def test_text_preview_of_the_spring_forward_night_shows_offsets_and_utc(tmp_path):
    done = schedules(tmp_path, "--from", "2027-03-27T12:00+01:00", "--count", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Sun 2027-03-28 03:00 +0200   2027-03-28 01:00 UTC" in out  # 02:00 does not exist
    hourly = out.split("\nhourly ")[1].split("\nriyadh ")[0]
    assert "Sat 2027-03-27 13:00 +0100" in hourly
    assert "(catch_up skip, overlap skip, follows the elapsed time)" in out


def test_hourly_preview_skips_the_missing_hour(tmp_path):
    done = schedules(tmp_path, "--from", "2027-03-28T00:30+01:00", "--count", "3", "--json")
    hourly = next(s for s in json.loads(done.stdout)["schedules"] if s["id"] == "hourly")
    assert [f["local"][11:] for f in hourly["next"]] == [
        "01:00:00+01:00", "03:00:00+02:00", "04:00:00+02:00"]


def test_a_task_disabled_at_run_time_is_marked(tmp_path):
    """Disabled through a real Runtime (persisted in its store), then listed by the CLI."""
    import asyncio

    from l3tui.config import load_config
    from l3tui.runtime import Runtime

    config = write_config(tmp_path / "config", WORKFLOWS, scheduling=SCHEDULING)

    async def disable() -> None:
        async with Runtime(load_config(config), tmp_path / "state", actor="test") as rt:
            assert (await rt.set_schedule_enabled("hourly", False)).applied

    asyncio.run(disable())
    done = schedules(tmp_path, "--count", "1")
    assert done.returncode == 0, done.stderr
    assert "hourly  hourly  [disabled: will not fire]" in done.stdout
    listing = json.loads(schedules(tmp_path, "--count", "1", "--json").stdout)
    assert {s["id"]: s["enabled"] for s in listing["schedules"]}["hourly"] is False


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, message in ((["--from", "tomorrow"], "--from expects an ISO 8601 time"),
                          (["--count", "0"], "--count must be between 1 and 1000")):
        done = schedules(tmp_path, *args)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and message in done.stderr
        assert "Traceback" not in done.stderr


def test_schedules_does_not_import_textual(tmp_path):
    config = write_config(tmp_path / "config", WORKFLOWS, scheduling=SCHEDULING)
    code = ("import sys\nfrom l3tui.cli import main\n"
            f"rc = main(['schedules', '--config', {str(config)!r}, '--state', "
            f"{str(tmp_path / 'state')!r}, '--count', '1'])\n"
            "assert rc == 0\nassert 'textual' not in sys.modules, 'textual imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
