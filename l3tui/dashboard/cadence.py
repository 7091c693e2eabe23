"""How often the console redraws: live figures every second (two over SSH), the history
charts at the dashboard's `refresh_interval` with a floor, slower over SSH. Pure policy;
the app's timers apply it.

- Live tick, every `live_s`: the top bar, sparklines, task queue, workflow tree, alerts,
  schedules, open dialogs and the legends of the charts follow the machine, from one
  snapshot (one reading shown the same everywhere), whatever `refresh_interval` says: the
  seed's 30 s main dashboard must not show a CPU figure or an alert age 30 s old.
- Chart tick, every `full_s` (`refresh_interval`, at least 250 ms, or 1 s over SSH, and
  doubled over SSH where every redraw crosses a slow link): the history charts re-plot.
- Log panes append new output at most every `log_s`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

FLOOR_S = 0.25
SSH_FLOOR_S = 1.0
LIVE_S = 1.0
SSH_LIVE_S = 2.0


@dataclass(frozen=True, slots=True)
class Cadence:
    full_s: float
    """History charts re-plot this often."""
    live_s: float
    """Live figures (everything but the history charts) redraw this often."""
    log_s: float


def over_ssh(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("SSH_CONNECTION") or env.get("SSH_CLIENT") or env.get("SSH_TTY"))


def cadence(refresh_interval_ms: float, ssh: bool) -> Cadence:
    """The redraw periods for a dashboard."""
    full = max(refresh_interval_ms / 1000, SSH_FLOOR_S if ssh else FLOOR_S)
    if ssh:
        full *= 2
    live = min(full, SSH_LIVE_S if ssh else LIVE_S)
    return Cadence(full_s=full, live_s=live, log_s=0.5 if ssh else 0.1)
