"""One attempt running on a Dask worker, as the engine sees it: a `TaskProcess`.

It is submitted under a key of its own (`pure=False`, Dask's retries off), with the task's
pools and memory as worker resources. Its output arrives as events (`dask_worker.py`) and is
written to the same per-task log, split into lines and searched for `L3METRIC` as locally.
`terminate()` sets the attempt's cancellation `distributed.Event`, which the runner on the
worker watches (a `Future.cancel()` would not stop a running task); pause and resume signal
the group on its worker through `Client.run`. An attempt whose worker died, or whose
scheduler went away, ends with `ProcessResult.lost`: the engine records it as interrupted and
retries it as the task's policy says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, Protocol

from l3tui.engine.executors.base import CommandJob, OnLines, OnMetric, Placement, ProcessResult
from l3tui.engine.executors.output import OutputCapture, open_private_log, parse_metric

log = logging.getLogger(__name__)

CANCELLED = ProcessResult(None, signal.SIGTERM, 0, 0, "")


class Cluster(Protocol):
    """What a DaskProcess needs of its executor (dask.py)."""

    address: str
    grace_s: float
    log_cap_bytes: int
    topic: str

    async def ready(self) -> Any:
        """The connected client, or raise `Lost`."""
        ...

    def routing(self, needs: Mapping[str, float]) -> dict[str, float] | str:
        """The worker resources to ask for, or why no worker can take the task."""
        ...

    def forget(self, process: DaskProcess) -> None: ...

    async def refresh(self) -> None:
        """Ask the scheduler for its workers now."""
        ...


class Lost(Exception):
    """The attempt cannot run or went away with its worker or scheduler (the message says)."""


def _explicit_env(env: Mapping[str, str]) -> dict[str, str]:
    """What the job sets beyond l3tui's own environment: the task's and action's `env`, the
    `L3_*` variables. The worker's environment is the rest (its PATH, its HOME)."""
    here = os.environ
    return {k: v for k, v in env.items() if here.get(k) != v}


class DaskProcess:
    """A started attempt on a Dask cluster (implements `base.TaskProcess`)."""

    pgid: int | None = None
    proc_start: float | None = None

    def __init__(self, cluster: Cluster, job: CommandJob, log_path: str | Path | None,
                 on_lines: OnLines, on_metric: OnMetric, placement: Placement,
                 argv: tuple[str, list[str]]) -> None:  # fmt: skip
        self.cluster = cluster
        self.job = job
        self.placement = placement
        self.key = f"l3tui/{placement.key}/{uuid.uuid4().hex[:8]}"
        """The Dask key: unique per attempt, and per l3tui instance sharing a cluster."""
        self.cancel_name = f"{self.key}/cancel"
        self._executable, self._argv = argv
        opener = (lambda: open_private_log(log_path)) if log_path is not None else None
        self.capture = OutputCapture(opener, cluster.log_cap_bytes, on_lines, on_metric, job.mask)
        self.on_metric = on_metric
        self.worker = ""
        """The address of the worker it runs on, once it has started there."""
        self.pid: int | None = None
        """Its process on that worker (not on this machine)."""
        self._started_at = 0.0
        self.paused = False
        self._cancel = False
        self._cancel_sent = False
        self._client: Any = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._result: asyncio.Future[ProcessResult] = loop.create_future()
        self._terminating: asyncio.Task[None] | None = None
        self._task = loop.create_task(self._run(), name=f"dask:{placement.key}")

    # ------------------------------------------------------------------ running

    async def _run(self) -> None:
        result = CANCELLED
        try:
            result = await self._submit_and_wait()
        except Lost as exc:
            result = ProcessResult(None, None, self.capture.total_bytes,
                                   self.capture.dropped_bytes, self.capture.last_line,
                                   lost=str(exc))  # fmt: skip
        except Exception as exc:  # a bug here must end the attempt, not hang it
            log.exception("dask attempt %s failed in l3tui", self.key)
            result = ProcessResult(None, None, 0, 0, "", lost=f"l3tui could not follow it: {exc}")
        finally:
            self.capture.close()
            self.cluster.forget(self)
            if not self._result.done():
                self._result.set_result(result)

    async def _submit_and_wait(self) -> ProcessResult:
        from l3tui.engine.executors import dask_worker

        if self._cancel:
            return CANCELLED
        client = self._client = await self.cluster.ready()
        resources = self.cluster.routing(self.placement.resources)
        if isinstance(resources, str):  # a worker may have joined since the last look
            await self.cluster.refresh()
            resources = self.cluster.routing(self.placement.resources)
        if isinstance(resources, str):
            raise Lost(resources)
        if self._cancel:
            return CANCELLED
        spec = {
            "key": self.key, "topic": self.cluster.topic, "cancel": self.cancel_name,
            "argv": self._argv, "executable": self._executable,
            "env": _explicit_env(self.job.env), "cap": self.cluster.log_cap_bytes,
            "grace": self.cluster.grace_s,
        }  # fmt: skip
        future = client.submit(dask_worker.run_attempt, spec, key=self.key, pure=False,
                               retries=0, resources=resources or None)  # fmt: skip
        try:
            outcome = await future
        except Exception as exc:  # Dask's errors are plain Exceptions, not asyncio's
            if self._cancel and type(exc).__name__ == "FutureCancelledError":
                return CANCELLED
            raise Lost(self._why_failed(exc)) from None
        finally:
            future.release()
            if self._cancel_sent:
                self._spawn(self._clear_cancel(client))
        return self._ended(outcome)

    def _why_failed(self, exc: BaseException) -> str:
        name = type(exc).__name__
        where = self.worker or "no worker yet"
        if name == "FutureCancelledError":
            if getattr(exc, "reason", "") == "scheduler-connection-lost":
                return f"lost the Dask scheduler {self.cluster.address} while it ran (on {where})"
            return f"Dask cancelled it (on {where}): {getattr(exc, 'reason', exc)}"
        if name == "KilledWorker":
            where = self.worker or getattr(exc, "last_worker", None) or "its worker"
            where = getattr(where, "address", where)
            return f"lost with its worker {where} (the worker died while it ran)"
        return f"the Dask runner failed on {self.worker or 'a worker'}: {name}: {exc}"

    def _ended(self, outcome: dict[str, Any]) -> ProcessResult:
        if outcome.get("cancelled"):
            return CANCELLED
        if outcome.get("error"):
            raise Lost(outcome["error"])
        capture = self.capture
        skipped = int(outcome.get("skipped", 0))
        tail: bytes = outcome.get("tail", b"")
        if skipped:
            capture.skipped(skipped - len(tail), int(outcome.get("skipped_lines", 0))
                            - tail.count(b"\n"))  # fmt: skip
            capture.feed(tail)
        return ProcessResult(outcome.get("exit_code"), outcome.get("signal"), capture.total_bytes,
                             capture.dropped_bytes, capture.last_line,
                             lost=outcome.get("lost", ""))  # fmt: skip

    # ------------------------------------------------------------------ messages

    def on_message(self, message: Mapping[str, Any]) -> None:
        """An event from the runner (placed, out, metrics, usage), in the order sent."""
        kind = message.get("kind")
        if kind == "out":
            self.capture.feed(message.get("data", b""))
        elif kind == "usage":
            self.placement.on_usage(float(message.get("cpu", 0.0)), int(message.get("rss", 0)))
        elif kind == "metrics":
            for raw in message.get("lines", ()):
                metric = parse_metric(bytes(raw).decode("utf-8", "replace").strip())
                if metric:
                    self.on_metric(*metric)
        elif kind == "placed":
            self.worker = str(message.get("worker", ""))
            self.pid = message.get("pid")
            self._started_at = float(message.get("start", 0.0))
            self.placement.on_worker(str(message.get("name", "")) or self.worker, self.pid)

    # ------------------------------------------------------------------ control

    def pause(self) -> bool:
        """SIGSTOP to its group on its worker; False until it has started there."""
        if self.paused or self._result.done() or not self._signal(signal.SIGSTOP):
            return False
        self.paused = True
        return True

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.paused = False
        return self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> bool:
        if self._client is None or not self.worker or self.pid is None:
            return False
        from l3tui.engine.executors import dask_worker

        sent = self._client.run(dask_worker.signal_group, self.pid, self._started_at, int(sig),
                                workers=[self.worker], on_error="return")  # fmt: skip
        self._spawn(self._report(sent, sig))
        return True

    async def _report(self, sent: Awaitable[Any], sig: int) -> None:
        try:
            answers = await sent
        except Exception as exc:
            log.warning("%s to %s on %s failed: %s", signal.Signals(sig).name, self.key,
                        self.worker, exc)  # fmt: skip
            return
        if not any(ok is True for ok in dict(answers).values()):
            log.warning("%s to %s on %s did not take", signal.Signals(sig).name, self.key,
                        self.worker)  # fmt: skip

    def terminate(self) -> asyncio.Task[None]:
        """Set the attempt's cancellation Event: the runner ends the tree (SIGTERM, grace,
        SIGKILL) and returns. Idempotent; awaitable until the attempt has ended."""
        if self._terminating is None:
            self._terminating = self._loop.create_task(self._terminate())
        return self._terminating

    async def _terminate(self) -> None:
        self._cancel = True
        self.paused = False
        client = self._client
        if client is not None and not self._result.done():
            from distributed import Event

            try:
                await Event(self.cancel_name, client=client).set()
                self._cancel_sent = True
            except Exception as exc:  # scheduler gone: the runner ends it on its own
                log.warning("could not cancel %s on the cluster: %s", self.key, exc)
        try:
            await asyncio.wait_for(asyncio.shield(self._result), self.cluster.grace_s + 30)
        except TimeoutError:
            log.warning("%s did not end within the grace period after cancel", self.key)
            self._task.cancel()

    async def _clear_cancel(self, client: Any) -> None:
        """A set Event stays on the scheduler until cleared."""
        from distributed import Event

        try:
            await Event(self.cancel_name, client=client).clear()
        except Exception:
            pass  # the scheduler went away, and the Event with it

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = self._loop.create_task(coro)  # type: ignore[arg-type]
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def wait(self) -> ProcessResult:
        return await asyncio.shield(self._result)

    @property
    def running(self) -> bool:
        return not self._result.done()


_background: set[asyncio.Task[Any]] = set()
