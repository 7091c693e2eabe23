"""pytest plugin (registered by tests/conftest.py): pytest-textual-snapshot writes its failure
report, `snapshot_report.html`, into the working directory, which is the checkout. Unless
`--snapshot-report PATH` says where, it goes to a fresh private temporary directory instead
(its path is printed with the failures); the directory is removed again when no report was
written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

PLUGIN_DEFAULT = "snapshot_report.html"


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass  # a report was written: it stays for the person to open


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--snapshot-report", default=None) != PLUGIN_DEFAULT:
        return  # not installed, or the person named a place
    where = Path(tempfile.mkdtemp(prefix="l3tui-snapshot-report-"))  # 0700, not guessable
    config.option.snapshot_report = str(where / PLUGIN_DEFAULT)
    config.add_cleanup(lambda: _remove_if_empty(where))
