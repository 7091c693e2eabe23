"""Dask executor: runs command tasks on the workers of a Dask cluster (implements
`base.Executor`); one per scheduler address.

One asynchronous `distributed.Client` on l3tui's own event loop, connected in the background
and watched: every `WATCH_S` the scheduler is asked for its workers (the `cluster` pane),
and a connection that breaks is reported (`notify`: an alert while it is down) and made
again with backoff; a restarted scheduler gets our output topic and settings again. Attempts
in flight when it breaks are lost (Dask cancels their futures): the engine retries them as
their policy says. On connecting, the scheduler's `allowed-failures` is set to 0, so a task
whose worker dies fails at once (`KilledWorker`: the attempt is lost) instead of being run
again elsewhere without l3tui knowing: l3tui's retry policy is the only one.

l3tui imports without dask: `distributed` is imported only when an executor connects.
Never start a cluster here (a LocalCluster inside the console's process breaks it): see
`l3tui cluster local`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from l3tui.engine.api import ClusterView, WorkerView
from l3tui.engine.executors.base import CommandJob, OnLines, OnMetric, Placement, SpawnError
from l3tui.engine.executors.dask_process import DaskProcess, Lost
from l3tui.engine.executors.starter import shell_wrap

log = logging.getLogger(__name__)

WATCH_S = 2.0
CONNECT_TIMEOUT_S = 10.0
READY_WAIT_S = 10.0
"""How long an attempt waits for a connection being made before it counts as lost."""
Notify = Callable[[str, str, str], None]
"""(address, state, message): connected, connecting or lost."""


class DaskMissing(SpawnError):
    """The `dask` extra is not installed."""


def import_distributed() -> Any:
    """The `distributed` module, or DaskMissing naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskMissing("executor dask needs the `dask` extra: pip install 'l3tui[dask]' "
                          f"({exc})") from None  # fmt: skip
    return distributed


class DaskExecutor:
    """Runs jobs on the cluster whose scheduler is at `address`."""

    def __init__(self, address: str, log_cap_bytes: int, grace_s: float,
                 notify: Notify | None = None, identity: str = "") -> None:  # fmt: skip
        self.address = address
        self.log_cap_bytes = log_cap_bytes
        self.grace_s = grace_s
        self.notify = notify or (lambda address, state, message: None)
        seed = identity or uuid.uuid4().hex
        self.topic = f"l3tui-output-{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
        """Our runners' output events; only this client subscribes to it. One per state dir
        (`identity`), not per process: the scheduler keeps each topic's last 1,000 events
        for as long as it runs."""
        self.client: Any = None
        self.state = "connecting"
        self.message = f"connecting to {address}"
        self.since = time.time()
        self.workers: tuple[WorkerView, ...] = ()
        self._declared: set[str] = set()
        """Resource names some worker declares."""
        self._procs: dict[str, DaskProcess] = {}
        self._connected = asyncio.Event()
        self._scheduler_id = ""
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ connection

    def warm(self) -> None:
        """Connect in the background (first use, or a configured cluster the pane shows)."""
        if self._supervisor is None and not self._closing:
            import_distributed()
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"dask-{self.address}")

    async def ready(self) -> Any:
        """The connected client; `Lost` if there is none within READY_WAIT_S."""
        self.warm()
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), READY_WAIT_S)
            except TimeoutError:
                raise Lost(f"the Dask scheduler {self.address} cannot be reached: "
                           f"{self.message}") from None  # fmt: skip
        return self.client

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._closing:
            try:
                client = await self._connect()
            except Exception as exc:  # OSError, TimeoutError, a refused handshake...
                self._set_state("lost", f"cannot reach {self.address}: {_why(exc)}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            try:
                await self._watch(client)
            except Exception as exc:
                self._set_state("lost", f"lost {self.address}: {_why(exc)}; reconnecting")
            finally:
                self._connected.clear()
                self.client = None
                await _close_quietly(client)

    async def _connect(self) -> Any:
        distributed = import_distributed()
        import cloudpickle

        from l3tui.engine.executors import dask_worker

        # Ship the runner by value: a worker needs dask and psutil, not l3tui.
        cloudpickle.register_pickle_by_value(dask_worker)
        client = await distributed.Client(self.address, asynchronous=True,
                                          timeout=CONNECT_TIMEOUT_S, set_as_default=False,
                                          name="l3tui")  # fmt: skip
        try:
            before = await client.run_on_scheduler(dask_worker.no_dask_retries)
            client.subscribe_topic(self.topic, self._on_event)
            info = await _identity(client)
        except BaseException:
            await _close_quietly(client)
            raise
        self._scheduler_id = str(info.get("id", ""))
        self._update(info)
        self.client = client
        self._connected.set()
        note = (f"; set its allowed-failures from {before} to 0 (l3tui retries lost attempts "
                "itself)" if before else "")  # fmt: skip
        self._set_state("connected", f"{len(self.workers)} worker(s){note}")
        return client

    async def _watch(self, client: Any) -> None:
        """Until the connection breaks: the workers, every WATCH_S."""
        while not self._closing:
            await asyncio.sleep(WATCH_S)
            if client.status != "running":
                raise ConnectionError(f"client {client.status}")
            info = await asyncio.wait_for(_identity(client), WATCH_S * 5)
            if str(info.get("id", "")) != self._scheduler_id:
                raise ConnectionError("the scheduler restarted")  # reconnect: topic, settings
            self._update(info)
            if self.state != "connected":
                self._set_state("connected", f"{len(self.workers)} worker(s)")

    def _set_state(self, state: str, message: str) -> None:
        changed = state != self.state
        self.state, self.message = state, message
        if changed:
            self.since = time.time()
            log.info("dask %s: %s (%s)", self.address, state, message)
            self.notify(self.address, state, message)

    def _update(self, info: Mapping[str, Any]) -> None:
        running: dict[str, list[str]] = {}
        for proc in self._procs.values():
            if proc.worker:
                running.setdefault(proc.worker, []).append(proc.placement.key)
        workers = []
        declared: set[str] = set()
        for address, w in sorted(dict(info.get("workers", {})).items()):
            metrics = w.get("metrics", {}) or {}
            resources = tuple(sorted((str(k), float(v))
                                     for k, v in (w.get("resources") or {}).items()))  # fmt: skip
            declared.update(name for name, _ in resources)
            workers.append(WorkerView(
                address=address, name=str(w.get("name", address)), host=str(w.get("host", "")),
                threads=int(w.get("nthreads", 0)), resources=resources,
                memory=int(metrics.get("memory", 0) or 0),
                memory_limit=int(w.get("memory_limit", 0) or 0),
                running=tuple(running.get(address, ())),
                last_seen=float(w.get("last_seen", 0.0) or 0.0),
                cpu_pct=float(metrics.get("cpu", 0.0) or 0.0),
            ))  # fmt: skip
        self.workers = tuple(workers)
        self._declared = declared

    def _on_event(self, event: Any) -> None:
        _, message = event
        proc = self._procs.get(message.get("key", "")) if isinstance(message, dict) else None
        if proc is not None:
            proc.on_message(message)

    # ------------------------------------------------------------------ Executor

    def start(self, job: CommandJob, log_path: str | Path | None, on_lines: OnLines,
              on_metric: OnMetric, placement: Placement | None = None) -> DaskProcess:  # fmt: skip
        if placement is None:
            raise SpawnError("a Dask attempt needs its placement (key, resources)")
        self.warm()
        # The program by the name it was given: the worker's PATH finds it there (l3tui
        # resolved it against its own PATH, which need not be the worker's).
        argv = shell_wrap(replace(job, executable=job.argv[0]))
        proc = DaskProcess(self, job, log_path, on_lines, on_metric, placement, argv)
        self._procs[proc.key] = proc
        return proc

    def routing(self, needs: Mapping[str, float]) -> dict[str, float] | str:
        """Worker resources for a task's pools (a worker must declare each) and memory_mb
        (asked only of a cluster whose workers declare `memory_mb`)."""
        wanted = {name: amount for name, amount in needs.items()
                  if name != "memory_mb" or "memory_mb" in self._declared}  # fmt: skip
        missing = sorted(set(wanted) - self._declared)
        if missing:
            have = ", ".join(f"{w.name} {dict(w.resources) or '{}'}" for w in self.workers)
            return (f"no worker of {self.address} declares {', '.join(missing)} (workers: "
                    f"{have or 'none'}); start one with --resources {missing[0]}=1")  # fmt: skip
        return wanted

    async def refresh(self) -> None:
        client = self.client
        if client is not None:
            try:
                self._update(await asyncio.wait_for(_identity(client), WATCH_S * 5))
            except Exception as exc:  # the watcher will notice a broken link
                log.debug("refreshing the workers of %s: %s", self.address, exc)

    def forget(self, process: DaskProcess) -> None:
        self._procs.pop(process.key, None)

    def view(self) -> ClusterView:
        return ClusterView(address=self.address, state=self.state, message=self.message,
                           since=self.since, workers=self.workers,
                           running=len(self._procs))  # fmt: skip

    async def close(self) -> None:
        """End our attempts still running (as cancel does), then disconnect."""
        running = [proc.terminate() for proc in list(self._procs.values())]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.client is not None:
            await _close_quietly(self.client)
            self.client = None


async def _identity(client: Any) -> Any:
    """The scheduler's description with every worker (schedulers before `n_workers` existed
    always listed them all)."""
    try:
        return await client.scheduler.identity(n_workers=-1)
    except TypeError:
        return await client.scheduler.identity()


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _close_quietly(client: Any) -> None:
    try:
        await asyncio.wait_for(client.close(), 5)
    except Exception as exc:
        log.debug("closing the Dask client: %s", exc)
