"""The daemon tests' fixtures: the real daemon process (`Daemon`, `make_daemon`) lives in
tests/conftest.py, shared with tests/coordinator/ and tests/faults/; `daemon` is one started
with the default workflows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import DAEMON_ACTIONS as ACTIONS
from tests.conftest import DAEMON_SCHEDULING as SCHEDULING
from tests.conftest import DAEMON_WORKFLOWS as WORKFLOWS
from tests.conftest import Daemon

__all__ = ["ACTIONS", "SCHEDULING", "WORKFLOWS", "Daemon"]


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    """A started daemon with the default workflows."""
    return make_daemon().start()
