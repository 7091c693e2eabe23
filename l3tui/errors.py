"""Errors a person can act on. The CLI prints `l3tui: <message>` and exits with `exit_code`;
no traceback reaches the user."""

from __future__ import annotations


class L3Error(Exception):
    """Base of every error meant for the user."""

    exit_code = 1


class UsageError(L3Error):
    """The command line asks for something that cannot be (unknown workflow, bad -p)."""

    exit_code = 2


class StateError(L3Error):
    """The state directory or database cannot be used as it is."""


class LockedError(StateError):
    """Another l3tui holds the state directory."""
