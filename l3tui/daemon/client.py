"""The console's side of the daemon's socket: `RemoteRuntime` gives an attached console (or
`l3tui run`) the same `RuntimeAPI` the Runtime gives in-process.

What the console reads synchronously (snapshots, queue slices, charts, workflows) comes from
a mirror the daemon keeps fresh by pushing; what is not pushed is fetched in the background
and shown on the next refresh. Events are republished on a local EventBus, so the console
subscribes as it always does. Commands are requests with ids: if the link drops before the
reply, the same id is sent again after reconnecting, and the daemon acts once.

When the daemon goes away the mirror keeps its last state, `connection` says so, and the
link is retried with backoff (0.2 s to 5 s); after reconnecting a fresh snapshot replaces
the mirror. Nothing here runs work.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from l3tui.config.schema import DashboardFile
from l3tui.daemon.protocol import (
    MAX_PUSH_BYTES,
    PROTOCOL,
    DaemonInfo,
    ProtocolError,
    check_version,
    decode,
    encode,
    socket_path,
)
from l3tui.daemon.wire import event_from_wire, from_wire, to_wire
from l3tui.engine import events as ev
from l3tui.engine.api import (
    ClusterView,
    ExecutionView,
    HealthView,
    OpResult,
    PerformanceView,
    QueueItemView,
    ReservationRequest,
    RuntimeSnapshot,
    WorkflowInfo,
)
from l3tui.engine.bus import EventBus, Subscription
from l3tui.errors import StateError

log = logging.getLogger(__name__)

BACKOFF_S = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0)
REQUEST_TIMEOUT_S = 30.0
EMPTY_PERFORMANCE = PerformanceView(0.0, 0, None, None, 0.0, 0.0, 0.0, None)


class DaemonUnavailable(StateError):
    """No daemon answers for this state dir (or it refused us); the message says which."""


class LinkLost(Exception):
    """The connection dropped before the reply came."""


def find_socket(state_dir: Path) -> Path | None:
    """The socket of the daemon serving `state_dir`, if one seems to (not yet probed)."""
    info = DaemonInfo.read(state_dir)
    candidates = [Path(info.socket)] if info is not None else []
    candidates.append(socket_path(state_dir))
    for path in candidates:
        with contextlib.suppress(OSError):
            if path.is_socket():
                return path
    return None


def daemon_answers(state_dir: Path, timeout: float = 1.0) -> bool:
    """True when a daemon accepts connections for `state_dir` (a quick probe)."""
    path = find_socket(state_dir)
    if path is None:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class RemoteRuntime:
    """`RuntimeAPI` over the daemon's socket. `await connect()`, then use; `await close()`."""

    def __init__(self, state_dir: Path, *, actor: str, client: str = "console",
                 snapshots: bool = True, kinds: Sequence[str] | None = None,
                 path: Path | None = None, reconnect: bool = True,
                 follow: bool = True) -> None:  # fmt: skip
        self.state_dir = state_dir
        self.actor = actor
        self.client = client
        self.want_snapshots = snapshots
        self.kinds = list(kinds) if kinds else None
        self.execution_id: str | None = None
        """Set by `follow_execution`: only its events are pushed (kept across reconnects)."""
        self.path = path
        self.reconnect = reconnect
        self.follow = follow
        """Subscribe and mirror (a console, `run`); False for one-off questions (doctor)."""
        self.bus = EventBus()
        self.daemon: dict[str, Any] = {}
        """The daemon's hello: pid, host, since, instance, version."""
        self.connected = asyncio.Event()
        self.status = "connecting"
        self.resyncs = 0
        self.closed = False
        self._prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._snapshot = RuntimeSnapshot(at=time.time(), executions=(), queue_length=0,
                                         running=(), resources={})  # fmt: skip
        self.snapshot_received = asyncio.Event()
        self._workflows: list[WorkflowInfo] = []
        self._dashboards = DashboardFile()
        self._queue: tuple[int, int, list[QueueItemView]] = (-1, 0, [])
        self._series: dict[tuple[str, float], tuple[float, list[tuple[float, float]]]] = {}
        self._performance: dict[float, tuple[float, PerformanceView]] = {}
        self._cluster: tuple[float, list[ClusterView]] = (0.0, [])
        self._executions: dict[str, tuple[float, ExecutionView | None]] = {}
        self._fetching: set[Any] = set()

    # ------------------------------------------------------------------ the link

    async def connect(self, within_s: float = 5.0) -> None:
        """The first connection: raises DaemonUnavailable saying why it could not be made."""
        try:
            await asyncio.wait_for(self._open(), within_s)
            await self._after_connect()
        except (OSError, TimeoutError, ProtocolError, LinkLost) as exc:
            await self.close()
            raise DaemonUnavailable(self._why(exc)) from None
        except BaseException:
            await self.close()
            raise

    def _why(self, exc: BaseException) -> str:
        where = self.path or find_socket(self.state_dir) or socket_path(self.state_dir)
        if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
            return f"no l3tui daemon answers for {self.state_dir} (socket {where})"
        if isinstance(exc, TimeoutError):
            return f"the daemon on {where} did not answer in time"
        return f"cannot attach to the daemon on {where}: {exc}"

    async def _open(self) -> None:
        path = self.path or find_socket(self.state_dir) or socket_path(self.state_dir)
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_PUSH_BYTES)
        try:
            hello = decode(await reader.readuntil(b"\n"))
            if hello.get("type") == "error":
                raise ProtocolError(str(hello.get("message")))
            if hello.get("type") != "hello":
                raise ProtocolError("the daemon did not greet")
            check_version(hello.get("protocol"), "daemon")
        except BaseException:
            writer.close()
            raise
        writer.write(encode({"type": "hello", "protocol": list(PROTOCOL),
                             "actor": self.actor, "client": self.client}))  # fmt: skip
        self._writer = writer
        self.daemon = hello
        self._reader_task = asyncio.ensure_future(self._read_loop(reader))
        self.connected.set()
        since = time.strftime("%H:%M", time.localtime(float(hello.get("since", 0))))
        self.status = (f"attached to daemon pid {hello.get('pid')} on {hello.get('host')} "
                       f"since {since}")  # fmt: skip

    async def _after_connect(self) -> None:
        if not self.follow:
            return
        await self.call("subscribe", {"snapshots": self.want_snapshots, "kinds": self.kinds,
                                      "execution_id": self.execution_id})  # fmt: skip
        self._workflows = [from_wire(WorkflowInfo, w) for w in await self.call("workflows")]
        self._dashboards = DashboardFile.model_validate(await self.call("dashboards"))
        if self.want_snapshots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.snapshot_received.wait(), REQUEST_TIMEOUT_S)

    async def close(self) -> None:
        self.closed = True
        for task in [*self._tasks, *([self._reader_task] if self._reader_task else [])]:
            task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2)
        self._fail_pending(LinkLost("closed"))

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    reason = f"a message over {MAX_PUSH_BYTES} bytes"
                    break
                self._dispatch(decode(line))
        except (OSError, ProtocolError) as exc:
            reason = str(exc)
        finally:
            self._lost(reason)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "reply":
            future = self._pending.pop(str(message.get("id")), None)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "snapshot":
            data = message["snapshot"]
            data["executions"] = message.get("executions", [])
            self._snapshot = from_wire(RuntimeSnapshot, data)
            self.snapshot_received.set()
        elif kind == "event":
            try:
                event = event_from_wire(message["event"])
            except ValueError as exc:
                log.warning("ignored an event from the daemon: %s", exc)
                return
            if isinstance(event, ev.SystemNotice) and event.topic == "config":
                self._spawn(self._refresh_config_then(event))  # dashboards first, then tell
            else:
                self.bus.publish(event)
        elif kind == "resync":
            self.resyncs += 1
            self._tell(f"fell behind the daemon ({message.get('reason')}); resynced", "warning")
        elif kind == "error":
            self.status = f"daemon refused: {message.get('message')}"

    def _lost(self, reason: str) -> None:
        self.connected.clear()
        self._writer = None
        self._fail_pending(LinkLost(reason))
        if self.closed:
            return
        self.status = f"daemon connection lost ({reason})"
        self._tell(f"{self.status}; reconnecting", "error")
        if self.reconnect:
            self._spawn(self._reconnect(reason))

    def _tell(self, message: str, severity: str) -> None:
        """A notice on the local bus: the console shows it and redraws its top bar."""
        self.bus.publish(ev.SystemNotice(at=time.time(), topic="daemon", message=message,
                                         severity=severity))  # fmt: skip

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    async def _reconnect(self, reason: str) -> None:
        for attempt in itertools.count():
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            self.status = (f"daemon connection lost ({reason}); reconnecting in {delay:g} s"
                           + (f" (attempt {attempt + 1})" if attempt else ""))  # fmt: skip
            await asyncio.sleep(delay)
            if self.closed:
                return
            try:
                await asyncio.wait_for(self._open(), 5.0)
                await self._after_connect()
                self._tell(f"re{self.status}", "information")
                return
            except (OSError, TimeoutError, ProtocolError, LinkLost) as exc:
                reason = self._why(exc).split(": ", 1)[-1] if isinstance(exc, ProtocolError) \
                    else type(exc).__name__ if not str(exc) else str(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ requests

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   retry: bool = False, within_s: float = REQUEST_TIMEOUT_S) -> Any:  # fmt: skip
        """Send a request and return its result. With `retry`, a link lost before the reply
        is bridged: the same id goes again once reconnected (the daemon acts once)."""
        request_id = f"{self._prefix}-{next(self._ids)}"
        line = encode({"type": "request", "id": request_id, "method": method,
                       "params": params or {}})  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"the daemon did not answer {method} in {within_s:g} s")
            await asyncio.wait_for(self.connected.wait(), remaining)
            writer = self._writer
            if writer is None:
                continue
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[request_id] = future
            try:
                writer.write(line)
                reply = await asyncio.wait_for(future, deadline - loop.time())
            except (LinkLost, ConnectionError) as exc:
                self._pending.pop(request_id, None)
                if retry and not self.closed:
                    continue
                raise LinkLost(str(exc)) from None
            if not reply.get("ok"):
                raise StateError(str(reply.get("error", "the daemon refused")))
            return reply.get("result")

    async def _command(self, method: str, **params: Any) -> OpResult:
        try:
            result = await self.call(method, params, retry=True)
        except (TimeoutError, LinkLost, StateError) as exc:
            return OpResult(False, f"not done: {exc}")
        return from_wire(OpResult, result)  # type: ignore[no-any-return]

    def _fetch(self, key: Any, method: str, params: dict[str, Any], store: Any) -> None:
        """Fetch in the background (one at a time per key); `store(result)` keeps it."""
        if key in self._fetching or not self.connected.is_set():
            return
        self._fetching.add(key)

        async def fetch() -> None:
            try:
                store(await self.call(method, params, within_s=10.0))
            except (TimeoutError, LinkLost, StateError) as exc:
                log.debug("%s failed: %s", method, exc)
            finally:
                self._fetching.discard(key)

        self._spawn(fetch())

    async def _refresh_config_then(self, event: ev.Event) -> None:
        with contextlib.suppress(TimeoutError, LinkLost, StateError):
            self._dashboards = DashboardFile.model_validate(await self.call("dashboards"))
            self._workflows = [from_wire(WorkflowInfo, w) for w in await self.call("workflows")]
        self.bus.publish(event)

    # ------------------------------------------------------------------ RuntimeAPI: reads

    def snapshot(self, recent: int = 20, *, committed: bool = False) -> RuntimeSnapshot:
        # The daemon pushes only pictures and events its store has: always committed.
        return replace(self._snapshot, connection=self.status)

    def subscribe(
        self, name: str = "console", maxsize: int = 10_000, *, committed: bool = False
    ) -> Subscription:
        return self.bus.subscribe(name, maxsize=maxsize)

    def queue_slice(self, offset: int, limit: int) -> Sequence[QueueItemView]:
        version, start, items = self._queue
        current = self._snapshot.queue_version
        inside = start <= offset and offset + limit <= start + len(items)
        if version != current or not inside:
            lo = max(offset - 100, 0)

            def keep(result: Any) -> None:
                self._queue = (current, lo, [from_wire(QueueItemView, i) for i in result])

            self._fetch(("queue",), "queue_slice", {"offset": lo, "limit": limit + 200}, keep)
        return items[max(offset - start, 0): max(offset - start, 0) + limit]

    def metric_series(self, name: str, window_s: float) -> Sequence[tuple[float, float]]:
        key = (name, float(window_s))
        fetched_at, data = self._series.get(key, (0.0, []))
        if time.monotonic() - fetched_at > 1.0:
            def keep(result: Any) -> None:
                self._series[key] = (time.monotonic(), [(float(t), float(v)) for t, v in result])

            self._fetch(("series", key), "metric_series", {"name": name, "window_s": window_s},
                        keep)  # fmt: skip
        return data

    def performance(self, window_s: float) -> PerformanceView:
        key = float(window_s)
        fetched_at, view = self._performance.get(key, (0.0, EMPTY_PERFORMANCE))
        if time.monotonic() - fetched_at > 1.0:
            def keep(result: Any) -> None:
                self._performance[key] = (time.monotonic(), from_wire(PerformanceView, result))

            self._fetch(("perf", key), "performance", {"window_s": window_s}, keep)
        return view

    def cluster(self) -> Sequence[ClusterView]:
        fetched_at, views = self._cluster
        if time.monotonic() - fetched_at > 1.0:
            def keep(result: Any) -> None:
                self._cluster = (time.monotonic(), [from_wire(ClusterView, c) for c in result])

            self._fetch(("cluster",), "cluster", {}, keep)
        return views

    def workflows(self) -> Sequence[WorkflowInfo]:
        return list(self._workflows)

    def execution(self, execution_id: str) -> ExecutionView | None:
        for view in self._snapshot.executions:
            if view.id == execution_id:
                return view
        fetched_at, found = self._executions.get(execution_id, (0.0, None))
        if time.monotonic() - fetched_at > 1.0:
            def keep(result: Any) -> None:
                view = from_wire(ExecutionView, result) if result is not None else None
                self._executions[execution_id] = (time.monotonic(), view)
                while len(self._executions) > 100:
                    self._executions.pop(next(iter(self._executions)))

            self._fetch(("exec", execution_id), "execution", {"execution_id": execution_id},
                        keep)  # fmt: skip
        return found

    def dashboards(self) -> DashboardFile:
        return self._dashboards

    async def follow_execution(self, execution_id: str) -> None:
        """From now on, only this execution's events (and snapshots as asked)."""
        self.execution_id = execution_id
        await self.call("subscribe", {"snapshots": self.want_snapshots, "kinds": self.kinds,
                                      "execution_id": execution_id}, retry=True)  # fmt: skip

    async def submit(self, decision: Any) -> dict[str, Any]:
        """Hand the daemon a decision (parsed JSON); its outcome. A link lost before the
        reply is bridged with the same request id (and the decision id acts once anyway)."""
        result = await self.call("submit", {"decision": decision}, retry=True)
        return dict(result)

    async def plan(self, decisions: list[Any]) -> list[dict[str, Any]]:
        """What the daemon would do with these decisions now (nothing acts)."""
        return list(await self.call("plan", {"decisions": decisions}))

    async def health(self) -> HealthView:
        return from_wire(HealthView, await self.call("health"))  # type: ignore[no-any-return]

    async def fetch_execution(self, execution_id: str) -> ExecutionView | None:
        """The execution as the daemon has it now (not the mirror's copy)."""
        result = await self.call("execution", {"execution_id": execution_id}, retry=True)
        return from_wire(ExecutionView, result) if result is not None else None

    # ------------------------------------------------------------------ RuntimeAPI: commands

    async def run_workflow(self, workflow_id: str, params: dict[str, Any] | None = None, *,
                           actor: str = "", trigger: str = "attached",
                           priority: str | int | None = None) -> OpResult:  # fmt: skip
        return await self._command("run_workflow", workflow_id=workflow_id, params=params or {},
                                   trigger=trigger, priority=priority)  # fmt: skip

    async def pause(self, execution_id: str, task_id: str | None = None, *,
                    actor: str = "") -> OpResult:  # fmt: skip
        return await self._command("pause", execution_id=execution_id, task_id=task_id)

    async def resume(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult:  # fmt: skip
        return await self._command("resume", execution_id=execution_id, task_id=task_id)

    async def cancel(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult:  # fmt: skip
        return await self._command("cancel", execution_id=execution_id, task_id=task_id)

    async def resume_interrupted(self, execution_id: str, *, actor: str = "") -> OpResult:
        return await self._command("resume_interrupted", execution_id=execution_id)

    async def ack_alert(self, alert_id: str, *, actor: str = "") -> OpResult:
        return await self._command("ack_alert", alert_id=alert_id)

    async def snooze_alert(self, alert_id: str, seconds: float, *, actor: str = "") -> OpResult:
        return await self._command("snooze_alert", alert_id=alert_id, seconds=seconds)

    async def set_schedule_enabled(self, schedule_id: str, enabled: bool, *,
                                   actor: str = "") -> OpResult:  # fmt: skip
        return await self._command("set_schedule_enabled", schedule_id=schedule_id,
                                   enabled=enabled)  # fmt: skip

    async def reload_config(self, *, actor: str = "") -> OpResult:
        return await self._command("reload_config")

    async def reserve(self, request: ReservationRequest, *, actor: str = "") -> OpResult:
        return await self._command("reserve", request=to_wire(request))

    async def cancel_reservation(self, reservation_id: str, *, actor: str = "") -> OpResult:
        return await self._command("cancel_reservation", reservation_id=reservation_id)
