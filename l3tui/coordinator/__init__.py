"""The seed's Execution Coordinator: decisions in (the inbox, `l3tui submit`, the daemon's
socket), plans (`l3tui plan`), results out (the outbox) and events out (sinks).

Layered beside the monitor, above the store (it records decision ids there before acting)
and the engine; the Runtime composes it and hands itself in as its `Host`.
"""

from l3tui.coordinator.coordinator import Coordinator, Outcome

__all__ = ["Coordinator", "Outcome"]
