"""Task graphs at run time: who depends on whom, and the set of tasks ready to be judged.

Pure functions and one small mutable tracker; nothing here runs tasks or knows about time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reverse_edges(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """task -> the tasks that depend on it."""
    out: dict[str, list[str]] = {node: [] for node in deps}
    for node, parents in deps.items():
        for parent in dict.fromkeys(parents):
            if parent in out:
                out[parent].append(node)
    return out


class ReadyTracker:
    """Counts unfinished dependencies so each task becomes ready exactly once."""

    __slots__ = ("_dependants", "_waiting")

    def __init__(self, deps: Mapping[str, Sequence[str]]) -> None:
        self._dependants = reverse_edges(deps)
        self._waiting = {node: len(set(ds)) for node, ds in deps.items()}

    def initial(self) -> list[str]:
        return [node for node, count in self._waiting.items() if count == 0]

    def settle(self, node: str) -> list[str]:
        """Mark `node` as finished (any outcome); return dependants now free to be judged."""
        freed = []
        for child in self._dependants.get(node, ()):
            self._waiting[child] -= 1
            if self._waiting[child] == 0:
                freed.append(child)
        return freed
