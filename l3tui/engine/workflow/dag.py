"""Task graphs at run time: who depends on whom, and the set of tasks ready to be judged.

One small mutable tracker; nothing here runs tasks or knows about time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ReadyTracker:
    """Counts unfinished dependencies so each task becomes ready exactly once."""

    __slots__ = ("_dependants", "_waiting")

    def __init__(self, deps: Mapping[str, Sequence[str]]) -> None:
        # Who depends on whom and how many distinct tasks each waits for, in one pass.
        dependants: dict[str, list[str]] = {node: [] for node in deps}
        waiting: dict[str, int] = {}
        for node, parents in deps.items():
            if len(parents) > 1:
                parents = list(dict.fromkeys(parents))
            waiting[node] = len(parents)
            for parent in parents:
                children = dependants.get(parent)
                if children is not None:
                    children.append(node)
        self._dependants = dependants
        self._waiting = waiting

    def fresh(self) -> ReadyTracker:
        """A tracker of the same graph with nothing settled yet (the dependants, read only,
        are shared: a copy costs one dict copy rather than a walk of the graph)."""
        tracker = ReadyTracker.__new__(ReadyTracker)
        tracker._dependants, tracker._waiting = self._dependants, dict(self._waiting)
        return tracker

    def initial(self) -> list[str]:
        return [node for node, count in self._waiting.items() if count == 0]

    def settle(self, node: str) -> list[str]:
        """Mark `node` as finished (any outcome); return dependants now free to be judged."""
        freed = []
        waiting = self._waiting
        for child in self._dependants.get(node, ()):
            left = waiting[child] = waiting[child] - 1
            if left == 0:
                freed.append(child)
        return freed
