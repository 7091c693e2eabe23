"""How often the console redraws: the dashboard's `refresh_interval` with a floor, slower
over SSH, and a faster path for state changes so a 30 s dashboard still shows a task
finishing within a second. Pure policy; the app's tick applies it.

- Full refresh (every pane, charts included): every `refresh_interval`, at least 250 ms
  (1 s over SSH), doubled over SSH where every redraw crosses a slow link.
- State panes (task queue, workflow tree, alerts, schedules) also redraw, at most once per
  `state_s`, when the engine reported a state change since their last redraw.
- Log panes append new output at most every `log_s`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

FLOOR_S = 0.25
SSH_FLOOR_S = 1.0


@dataclass(frozen=True, slots=True)
class Cadence:
    full_s: float
    state_s: float
    log_s: float


def over_ssh(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("SSH_CONNECTION") or env.get("SSH_CLIENT") or env.get("SSH_TTY"))


def cadence(refresh_interval_ms: float, ssh: bool) -> Cadence:
    """The redraw periods for a dashboard."""
    full = max(refresh_interval_ms / 1000, SSH_FLOOR_S if ssh else FLOOR_S)
    if ssh:
        full *= 2
    state = min(full, 2.0 if ssh else 1.0)
    return Cadence(full_s=full, state_s=state, log_s=0.5 if ssh else 0.1)
