"""The daemon's socket server: serves one Runtime to any number of local clients.

Each client is checked (same uid, by SO_PEERCRED), greets (protocol versions compared),
then sends requests and, once subscribed, is pushed snapshots and every event. A client
that reads slowly never slows the Runtime: what is pushed to it waits in a queue bounded in
bytes; past the bound the queue is dropped, the client is told to resync and gets a fresh
snapshot, and a client that stays stalled is disconnected. Snapshots are built once per
push for all clients, at a pace that adapts to what one costs.

It decides nothing about work: every command goes to the Runtime, audited with the client's
user and terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

from l3tui import __version__
from l3tui.daemon.protocol import (
    MAX_REQUEST_BYTES,
    PROTOCOL,
    DaemonInfo,
    ProtocolError,
    check_version,
    decode,
    encode,
    private_dir,
    socket_path,
)
from l3tui.daemon.wire import from_wire, to_wire
from l3tui.engine import events as ev
from l3tui.engine.api import ExecutionView, OpResult, ReservationRequest
from l3tui.engine.bus import Subscription
from l3tui.errors import StateError
from l3tui.runtime import Runtime
from l3tui.sanitize import clean

log = logging.getLogger(__name__)

QUEUE_BYTES = 8 * 1024 * 1024
"""What may wait for one client before it is told to resync."""
STALLED_S = 60.0
"""A client that has not taken anything for this long after a resync is disconnected."""
MAX_PENDING_REPLIES = 1000
REMEMBERED_COMMANDS = 10_000
COMMANDS = frozenset({"run_workflow", "pause", "resume", "cancel", "resume_interrupted",
                      "ack_alert", "snooze_alert", "set_schedule_enabled", "reload_config",
                      "reserve", "cancel_reservation", "submit"})


class Client:
    """One connected client: what it may be sent, in order, within its byte budget."""

    ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 uid: int, pid: int) -> None:  # fmt: skip
        self.id = next(self.ids)
        self.reader = reader
        self.writer = writer
        self.uid = uid
        self.pid = pid
        self.actor = f"{_user(uid)}@client-{pid}"
        self.name = "client"
        self.subscribed = False
        self.want_snapshots = True
        self.kinds: frozenset[str] | None = None
        self.execution_id: str | None = None
        """Only this execution's events (`l3tui run` following one), or all."""
        self.replies: deque[bytes] = deque()
        self.events: deque[bytes] = deque()
        self.queued_bytes = 0
        self.snapshot: bytes | None = None
        """The newest snapshot not yet sent (a newer one replaces it)."""
        self.resync: str | None = None
        self.dropped = 0
        self.last_progress = time.monotonic()
        self.wake = asyncio.Event()
        self.closed = False
        self.connected_at = time.time()

    def reply(self, line: bytes) -> None:
        self.replies.append(line)
        self.wake.set()

    def push_event(self, kind: str, execution_id: str | None, line: bytes) -> None:
        if not self.subscribed or (self.kinds is not None and kind not in self.kinds):
            return
        if self.execution_id is not None and execution_id != self.execution_id:
            return
        if self.resync is not None:
            self.dropped += 1
            return
        if self.queued_bytes + len(line) > QUEUE_BYTES:
            self.dropped += len(self.events) + 1
            self.events.clear()
            self.queued_bytes = 0
            self.resync = f"fell behind: {self.dropped} event(s) dropped"
        else:
            self.events.append(line)
            self.queued_bytes += len(line)
        self.wake.set()

    def push_snapshot(self, line: bytes) -> None:
        if self.subscribed and self.want_snapshots:
            self.snapshot = line
            self.wake.set()


class DaemonServer:
    """`async with DaemonServer(runtime, state_dir):` serves until closed."""

    def __init__(self, runtime: Runtime, state_dir: Path, *, path: Path | None = None,
                 push_interval_s: float = 0.05) -> None:  # fmt: skip
        self.runtime = runtime
        self.state_dir = state_dir
        self.path = path or socket_path(state_dir)
        self.min_push_s = push_interval_s
        self.instance = os.urandom(8).hex()
        self.since = time.time()
        self.host = socket.gethostname()
        self.seq = 0
        self.clients: set[Client] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty = asyncio.Event()
        self._remembered: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        self._events: Subscription | None = None
        self.snapshot_cost_s = 0.0
        self._encoded: dict[str, tuple[ExecutionView, bytes]] = {}
        """Each shown execution's JSON, kept while its view is the same object."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DaemonServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        private_dir(self.path.parent)
        _replace_stale(self.path)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES + 1)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        DaemonInfo(os.getpid(), str(self.path), self.instance, self.since, self.host,
                   __version__).write(self.state_dir)  # fmt: skip
        # Clients hear of an event only once the store has it (a success a console shows is
        # on disk), in order; lossy only past 200,000 behind, and then every client resyncs.
        self._events = self.runtime.bus.subscribe("daemon", maxsize=200_000, committed=True)
        self._spawn(self._pump_events(self._events), "daemon-events")
        self._spawn(self._push_snapshots(), "daemon-snapshots")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        # What clients were sent last (the end of the executions the stop cancelled) should
        # reach them: a bounded moment for the store to commit it, the pump to take it and
        # the clients' queues to drain.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.runtime.bus.durable(), 5.0)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and (
            (self._events is not None and self._events.pending())
            or any(c.replies or c.events for c in self.clients if not c.closed)
        ):
            await asyncio.sleep(0.02)
        if self._events is not None:
            self._events.close()
            self._events = None
        for client in list(self.clients):
            await self._drop(client, "the daemon is stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            if self.path.is_socket():
                self.path.unlink()
        DaemonInfo.remove(self.state_dir, self.instance)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception(),
                      exc_info=task.exception())  # fmt: skip

    def hello(self) -> dict[str, Any]:
        return {"type": "hello", "protocol": list(PROTOCOL), "version": __version__,
                "instance": self.instance, "pid": os.getpid(), "host": self.host,
                "since": self.since, "seq": self.seq, "state_dir": str(self.state_dir)}

    # ------------------------------------------------------------------ pushing

    async def _pump_events(self, sub: Subscription) -> None:
        dropped = 0
        while True:
            try:
                batch = await sub.get_batch(5000)
            except StopAsyncIteration:
                return
            if sub.dropped != dropped:
                dropped = sub.dropped
                for client in self.clients:
                    if client.subscribed and client.resync is None:
                        client.resync = f"the daemon fell behind: {dropped} event(s) dropped"
                        client.wake.set()
            for event in batch:
                self._on_event(event)

    def _on_event(self, event: ev.Event) -> None:
        self.seq += 1
        if not isinstance(event, ev.ResourceSampled):
            self._dirty.set()
        if not any(c.subscribed for c in self.clients):
            return
        line = encode({"type": "event", "seq": self.seq, "event": to_wire(event)})
        exec_id = getattr(event, "execution_id", None)
        for client in self.clients:
            client.push_event(event.kind, exec_id, line)

    async def _push_snapshots(self) -> None:
        """Whenever something changed (and at least once a second, for the live numbers),
        one snapshot for every subscribed client; never more often than 5x what the last
        one cost, so a huge snapshot cannot eat the daemon."""
        interval = self.min_push_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=1.0)
            self._dirty.clear()
            if any(c.subscribed and c.want_snapshots for c in self.clients):
                line = self._snapshot_line()
                # It shows states whose events are published; once the store has them, it
                # may be shown.
                await self.runtime.bus.durable()
                for client in self.clients:
                    client.push_snapshot(line)
                interval = max(self.min_push_s, 5 * self.snapshot_cost_s)
            await asyncio.sleep(interval)

    def _snapshot_line(self) -> bytes:
        """One snapshot message. Executions travel beside the rest, each encoded once for
        as long as its view does not change (finished ones never do)."""
        started = time.perf_counter()
        snapshot = self.runtime.snapshot()
        fragments = []
        encoded: dict[str, tuple[ExecutionView, bytes]] = {}
        for view in snapshot.executions:
            cached = self._encoded.get(view.id)
            if cached is None or cached[0] is not view:
                cached = (view, json.dumps(to_wire(view), ensure_ascii=False,
                                           separators=(",", ":")).encode())  # fmt: skip
            encoded[view.id] = cached
            fragments.append(cached[1])
        self._encoded = encoded
        head = encode({"type": "snapshot", "seq": self.seq,
                       "snapshot": to_wire(replace(snapshot, executions=()))})  # fmt: skip
        line = head[:-2] + b',"executions":[' + b",".join(fragments) + b"]}\n"
        self.snapshot_cost_s = time.perf_counter() - started
        return line

    # ------------------------------------------------------------------ one client

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, uid = _peer(sock)
        client = Client(reader, writer, uid, pid)
        if uid != os.getuid():
            log.warning("refused a client of uid %s (pid %s)", uid, pid)
            await _say_and_close(writer, {"type": "error", "message":
                                 f"refused: this daemon serves uid {os.getuid()} only"})
            return
        self.clients.add(client)
        sender = self._spawn(self._send_loop(client), f"daemon-send-{client.id}")
        try:
            client.reply(encode(self.hello()))
            greeting = await self._read(client)
            if greeting is None:
                return
            if greeting.get("type") != "hello":
                raise ProtocolError("the first message must be a hello")
            check_version(greeting.get("protocol"), "client")
            client.name = clean(str(greeting.get("client", "client")))[:40]
            client.actor = f"{_actor(uid, greeting.get('actor'))} (via daemon, {client.name})"
            log.info("client %s connected: %s (%s)", client.id, client.actor, client.name)
            while (message := await self._read(client)) is not None:
                self._spawn(self._handle(client, message), f"daemon-req-{client.id}")
        except ProtocolError as exc:
            client.reply(encode({"type": "error", "message": str(exc)}))
            await self._flush(client)
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            await self._drop(client, "disconnected")

    async def _read(self, client: Client) -> dict[str, Any] | None:
        try:
            line = await client.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"a line longer than {MAX_REQUEST_BYTES} bytes") from None
        return decode(line)

    async def _send_loop(self, client: Client) -> None:
        writer = client.writer
        while not client.closed:
            await client.wake.wait()
            client.wake.clear()
            while client.replies or client.events or client.snapshot or client.resync:
                if client.replies:
                    line = client.replies.popleft()
                elif client.resync is not None:
                    line = encode({"type": "resync", "reason": client.resync})
                    client.resync = None
                    client.dropped = 0
                    client.snapshot = self._snapshot_line() if client.want_snapshots else None
                elif client.events:
                    line = client.events.popleft()
                    client.queued_bytes -= len(line)
                else:
                    line, client.snapshot = client.snapshot or b"", None
                try:
                    writer.write(line)
                    await asyncio.wait_for(writer.drain(), timeout=STALLED_S)
                except TimeoutError:
                    log.warning("client %s stalled for %.0f s: disconnected", client.id,
                                STALLED_S)  # fmt: skip
                    writer.close()
                    return
                except (ConnectionError, OSError):
                    return  # it went away; `_serve` sees the end of its input and drops it
                client.last_progress = time.monotonic()
                if len(client.replies) > MAX_PENDING_REPLIES:
                    writer.close()
                    return

    async def _flush(self, client: Client) -> None:
        with contextlib.suppress(Exception):
            for line in client.replies:
                client.writer.write(line)
            client.replies.clear()
            await asyncio.wait_for(client.writer.drain(), timeout=2)

    async def _drop(self, client: Client, why: str) -> None:
        if client.closed:
            return
        client.closed = True
        client.wake.set()
        self.clients.discard(client)
        log.info("client %s gone: %s", client.id, why)
        with contextlib.suppress(Exception):
            client.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.writer.wait_closed(), timeout=2)

    # ------------------------------------------------------------------ requests

    async def _handle(self, client: Client, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        if message.get("type") != "request" or not isinstance(request_id, str):
            client.reply(encode({"type": "reply", "id": request_id, "ok": False,
                                 "error": "expected {type: request, id: STRING, method, "
                                 "params}"}))  # fmt: skip
            return
        method = message.get("method")
        params = message.get("params") or {}
        if not isinstance(method, str) or not isinstance(params, dict):
            reply = {"ok": False, "error": "method must be a string and params an object"}
        elif method in COMMANDS:
            reply = await self._command_once(client, request_id, method, params)
        else:
            reply = await self._answer(client, method, params)
        client.reply(encode({"type": "reply", "id": request_id, **reply}))

    async def _command_once(self, client: Client, request_id: str, method: str,
                            params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """A command acts once per request id: a retry after a lost reply gets the same
        answer without acting again."""
        known = self._remembered.get(request_id)
        if known is not None:
            return await asyncio.shield(known)
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._remembered[request_id] = done
        while len(self._remembered) > REMEMBERED_COMMANDS:
            self._remembered.popitem(last=False)
        reply = await self._answer(client, method, params)
        done.set_result(reply)
        return reply

    async def _answer(self, client: Client, method: str,
                      params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        handler = getattr(self, f"_m_{method}", None) if method.isidentifier() else None
        if handler is None:
            return {"ok": False, "error": f"unknown method {method!r}"}
        try:
            result = await handler(client, **params)
        except TypeError as exc:
            return {"ok": False, "error": f"{method}: bad params ({exc})"}
        except (StateError, ValueError, KeyError) as exc:
            return {"ok": False, "error": f"{method}: {exc}"}
        except Exception as exc:  # a bug of ours: the client gets a line, the daemon lives
            log.exception("request %s failed", method)
            return {"ok": False, "error": f"{method}: internal error: {exc}"}
        return {"ok": True, "result": to_wire(result)}

    # Methods a client may call: `_m_<method>(client, **params)`.

    async def _m_subscribe(self, client: Client, snapshots: bool = True,
                           kinds: list[str] | None = None,
                           execution_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Pushed from now on: snapshots (or not), and events (of these kinds, of this
        execution only, or all). Sent again, it narrows or widens what follows."""
        client.want_snapshots = bool(snapshots)
        client.kinds = frozenset(kinds) if kinds else None
        client.execution_id = str(execution_id) if execution_id else None
        client.subscribed = True
        if client.want_snapshots:
            client.push_snapshot(self._snapshot_line())
        return {"seq": self.seq}

    async def _m_snapshot(self, client: Client, recent: int = 20) -> Any:
        return self.runtime.snapshot(int(recent))

    async def _m_queue_slice(self, client: Client, offset: int, limit: int) -> Any:
        return list(self.runtime.queue_slice(int(offset), min(int(limit), 5000)))

    async def _m_metric_series(self, client: Client, name: str, window_s: float) -> Any:
        return [list(point) for point in self.runtime.metric_series(str(name), float(window_s))]

    async def _m_performance(self, client: Client, window_s: float) -> Any:
        return self.runtime.performance(float(window_s))

    async def _m_cluster(self, client: Client) -> Any:
        return list(self.runtime.cluster())

    async def _m_workflows(self, client: Client) -> Any:
        return list(self.runtime.workflows())

    async def _m_execution(self, client: Client, execution_id: str) -> Any:
        return self.runtime.execution(str(execution_id))

    async def _m_dashboards(self, client: Client) -> Any:
        return self.runtime.dashboards().model_dump(mode="json", by_alias=True)

    async def _m_health(self, client: Client) -> Any:
        return self.health()

    async def _m_log_chunk(self, client: Client, execution_id: str, task_id: str, attempt: int,
                        offset: int = 0, limit: int = 256 * 1024) -> Any:  # fmt: skip
        return self._log_chunk(str(execution_id), str(task_id), int(attempt), int(offset),
                               min(int(limit), 512 * 1024))  # fmt: skip

    async def _m_run_workflow(self, client: Client, workflow_id: str,
                           params: dict[str, Any] | None = None,
                           priority: str | int | None = None,
                           trigger: str = "attached") -> OpResult:  # fmt: skip
        return await self.runtime.run_workflow(str(workflow_id), params or {}, actor=client.actor,
                                     trigger=str(trigger)[:80], priority=priority)  # fmt: skip

    async def _m_pause(self, client: Client, execution_id: str,
                    task_id: str | None = None) -> OpResult:  # fmt: skip
        return await self.runtime.pause(str(execution_id), task_id, actor=client.actor)

    async def _m_resume(self, client: Client, execution_id: str,
                     task_id: str | None = None) -> OpResult:  # fmt: skip
        return await self.runtime.resume(str(execution_id), task_id, actor=client.actor)

    async def _m_cancel(self, client: Client, execution_id: str,
                     task_id: str | None = None) -> OpResult:  # fmt: skip
        return await self.runtime.cancel(str(execution_id), task_id, actor=client.actor)

    async def _m_resume_interrupted(self, client: Client, execution_id: str) -> OpResult:
        return await self.runtime.resume_interrupted(str(execution_id), actor=client.actor)

    async def _m_ack_alert(self, client: Client, alert_id: str) -> OpResult:
        return await self.runtime.ack_alert(str(alert_id), actor=client.actor)

    async def _m_snooze_alert(self, client: Client, alert_id: str, seconds: float) -> OpResult:
        return await self.runtime.snooze_alert(str(alert_id), float(seconds), actor=client.actor)

    async def _m_set_schedule_enabled(self, client: Client, schedule_id: str,
                                   enabled: bool) -> OpResult:  # fmt: skip
        return await self.runtime.set_schedule_enabled(str(schedule_id), bool(enabled),
                                             actor=client.actor)  # fmt: skip

    async def _m_reload_config(self, client: Client) -> OpResult:
        return await self.runtime.reload_config(actor=client.actor)

    async def _m_reserve(self, client: Client, request: dict[str, Any]) -> OpResult:
        try:
            wanted = from_wire(ReservationRequest, request)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a reservation request is {{cpu, memory_mb, pools, starts_at, "
                             f"duration_s, reason}} ({exc})") from None  # fmt: skip
        return await self.runtime.reserve(wanted, actor=client.actor)

    async def _m_cancel_reservation(self, client: Client, reservation_id: str) -> OpResult:
        return await self.runtime.cancel_reservation(str(reservation_id), actor=client.actor)

    async def _m_submit(self, client: Client, decision: Any) -> dict[str, Any]:
        """A decision, checked and handled exactly as one from the inbox (the same id twice
        acts once); the outcome, rejected ones included."""
        if self.runtime.coordinator is None:
            raise StateError("this l3tui takes no decisions")
        outcome = await self.runtime.coordinator.submit(decision, f"socket ({client.actor})")
        return outcome.to_dict()

    async def _m_plan(self, client: Client, decisions: list[Any]) -> list[dict[str, Any]]:
        """What these decisions would do now, judged against what runs; nothing acts."""
        if self.runtime.coordinator is None:
            raise StateError("this l3tui takes no decisions")
        if not isinstance(decisions, list):
            raise ValueError("decisions must be a list")
        return await self.runtime.coordinator.plan(decisions)


    def _log_chunk(self, execution_id: str, task_id: str, attempt: int, offset: int,
                   limit: int) -> dict[str, Any]:  # fmt: skip
        """Bytes `offset`.. of one attempt's log, as UTF-8 text (invalid bytes replaced):
        only files under STATE/runs, never through a symlink."""
        for part in (execution_id, task_id):
            if not part or "/" in part or part in (".", "..") or "\0" in part:
                raise ValueError("bad execution or task id")
        path = self.runtime.state_dir / "runs" / execution_id / f"{task_id}.{attempt}.log"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {"data": "", "offset": offset, "size": 0, "exists": False}
        except OSError as exc:
            raise ValueError(f"cannot read the log: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, limit, max(offset, 0)) if offset < size else b""
        finally:
            os.close(fd)
        # Never cut a UTF-8 sequence in two: end the chunk at the last complete line.
        if len(data) == limit and b"\n" in data:
            data = data[: data.rfind(b"\n") + 1]
        return {"data": data.decode("utf-8", "replace"), "offset": offset + len(data),
                "size": size, "exists": True}  # fmt: skip

    def health(self) -> Any:
        return self.runtime.health([c.actor for c in self.clients if not c.closed])


def _peer(sock: socket.socket | None) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a unix socket."""
    if sock is None:
        return 0, -1
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _actor(uid: int, claimed: Any) -> str:
    """Who acts, for the audit: the client's own description (terminal, SSH origin), but
    its user part is what the kernel says, not what the client claims."""
    user = _user(uid)
    text = clean(str(claimed or ""))[:120]
    rest = text.partition("@")[2] if "@" in text else "unknown"
    return f"{user}@{rest}"


def _replace_stale(path: Path) -> None:
    """Remove a socket nobody answers on; refuse a live one or a non-socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StateError(f"{path} exists and is not a socket; remove it or set XDG_RUNTIME_DIR")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise StateError(f"a daemon already answers on {path}")


async def _say_and_close(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        writer.write(encode(message))
        await asyncio.wait_for(writer.drain(), timeout=2)
        writer.close()
