"""What an executor is. The workflow engine hands an `Executor` a `CommandJob` and gets
back a `TaskProcess` it can pause, resume, terminate and wait for; it knows nothing else
about where or how the process runs. `local.py` runs each job as a process group on this
machine; a remote executor (Dask) implements the same two protocols.

Usage (CPU, RSS) of a local task is measured by the resource sampler through the task's
process group (`pgid`); an executor whose processes run elsewhere reports `pgid=None` and
hands its own samples to `Placement.on_usage`.

A remote executor can lose an attempt without it failing (its worker died, its scheduler went
away): `ProcessResult.lost` then says why, and the engine records the attempt as interrupted
and retries it as its policy says.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from l3tui.config.schema import ExecutorChoice, RLimits
from l3tui.engine.executors.output import SecretMask

OnLines = Callable[[list[str]], None]
"""Called with complete output lines as they arrive (sanitised)."""
OnMetric = Callable[[str, float], None]
"""Called for each `L3METRIC name=value` line."""


@dataclass(frozen=True, slots=True)
class CommandJob:
    """A process to spawn."""

    argv: tuple[str, ...]
    executable: str
    env: Mapping[str, str]
    cwd: str | None
    timeout_s: float
    rlimits: RLimits | None = None
    origin: str = ""
    """Where it was defined, for messages: `l3-actions.yml: run_flutter_tests`."""
    mask: SecretMask | None = None
    """The secrets in its argv or env: masked wherever the job is shown or its output goes."""

    @property
    def shown_argv(self) -> tuple[str, ...]:
        """The argv as it may be shown and recorded (secrets as `***`)."""
        return self.mask.argv(self.argv) if self.mask is not None else self.argv

    def shown(self, text: str) -> str:
        """`text` (a message about the job) as it may be shown."""
        return self.mask.text(text) if self.mask is not None else text


OnWorker = Callable[[str, "int | None"], None]
"""Called with the worker an attempt landed on and its pid there (remote executors)."""
OnUsage = Callable[[float, int], None]
"""Called with one sample of a remote task's process tree: CPU % and RSS bytes."""


def _ignore(*_args: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an attempt runs and what it asks of the machine that runs it. The local
    executor needs none of it; the executor set routes by `choices` (resolved against the
    configured default) and a remote executor maps `resources` onto its workers'."""

    key: str
    """Unique per attempt: `execution/task/attempt`."""
    choices: tuple[ExecutorChoice | None, ...] = ()
    """The task's and its workflow's `executor`, most specific first (None: not chosen)."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Pool slots and `memory_mb` the task declared."""
    on_worker: OnWorker = _ignore
    on_usage: OnUsage = _ignore


class SpawnError(Exception):
    """The process could not be started."""


@dataclass(frozen=True, slots=True)
class ProcessResult:
    exit_code: int | None
    """The exit status, or None when killed by a signal."""
    signal: int | None
    total_bytes: int
    dropped_bytes: int
    last_line: str
    cpu_s: float | None = None
    """CPU seconds (user + system) of the process and the descendants it waited for, as the
    kernel counted them when it was reaped; None when not known (a remote executor)."""
    max_rss: int | None = None
    """Bytes: the largest resident set of any one of those processes (the kernel's
    high-water mark, not a sum over the tree); None when unknown, or when not above l3tui's
    own (Linux counts the parent's memory in a spawned child's mark, see local.py)."""
    lost: str = ""
    """Why the attempt was lost rather than ended (its worker died...); empty when it ran
    to an end of its own."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.lost

    def describe(self) -> str:
        if self.lost:
            return self.lost
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        return f"exit code {self.exit_code}"


class TaskProcess(Protocol):
    """A started task: owned by the engine until `wait()` returns."""

    @property
    def pid(self) -> int | None:
        """Its process here; None for one that runs on another machine."""
        ...

    @property
    def pgid(self) -> int | None:
        """The local process group the sampler measures, None when it runs elsewhere."""
        ...

    @property
    def proc_start(self) -> float | None:
        """Boot-clock start time, so recovery never mistakes a reused pid for this one."""
        ...

    def pause(self) -> bool:
        """Freeze the whole task (SIGSTOP its group); False if it could not be."""
        ...

    def resume(self) -> bool: ...

    def terminate(self) -> Awaitable[None]:
        """SIGTERM, a grace period, SIGKILL: idempotent; awaitable until it took."""
        ...

    async def wait(self) -> ProcessResult:
        """Until the process ended and its output is drained."""
        ...


class Executor(Protocol):
    """Starts jobs. `start` raises SpawnError when the job cannot be started at all."""

    def start(
        self, job: CommandJob, log_path: str | Path | None, on_lines: OnLines, on_metric: OnMetric,
        placement: Placement | None = None,
    ) -> TaskProcess: ...

    async def close(self) -> None:
        """The engine is done: end every task still running and whatever tasks left."""
        ...
