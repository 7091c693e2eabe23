"""A failing snapshot test leaves nothing in the checkout: pytest-textual-snapshot's HTML
report goes to a private temporary directory (tests/snapshot_report.py), whose path the
failure output names. Run as a real pytest in its own process, from a directory standing
for the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FAILING = '''
from textual.app import App
from textual.widgets import Static


class Hello(App):
    def compose(self):
        yield Static("hello")


def test_no_snapshot_yet_fails(snap_compare):
    assert snap_compare(Hello(), terminal_size=(20, 3))
'''


def run_pytest(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.snapshot_report", *args, "test_fails.py"],
                          cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.mark.slow  # a whole pytest run in its own process
def test_a_failing_snapshot_leaves_no_report_in_the_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "test_fails.py").write_text(FAILING, encoding="utf-8")
    out = run_pytest(checkout)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed" in out.stdout
    assert sorted(p.name for p in checkout.iterdir()) == ["test_fails.py"]
    [report] = re.findall(r"(/\S*l3tui-snapshot-report-\w+/snapshot_report\.html)", out.stdout)
    path = Path(report)
    try:
        assert path.is_file() and "test_no_snapshot_yet_fails" in path.read_text("utf-8")
        assert (path.parent.stat().st_mode & 0o077) == 0  # private: mkdtemp
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()


@pytest.mark.slow  # a whole pytest run in its own process
def test_a_report_path_given_on_the_command_line_is_kept(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "test_fails.py").write_text(FAILING, encoding="utf-8")
    wanted = tmp_path / "reports" / "mine.html"
    out = run_pytest(checkout, f"--snapshot-report={wanted}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert wanted.is_file()
    assert sorted(p.name for p in checkout.iterdir()) == ["test_fails.py"]


def test_this_suite_sends_its_snapshot_report_outside_the_checkout(request) -> None:
    report = Path(request.config.getoption("--snapshot-report"))
    assert report.is_absolute() and REPO not in report.parents
    assert Path.cwd() / report == report  # the plugin joins it to the working directory
