"""The trainer's side of the bridge: futures over one or more servers (pure python + numpy + pyzmq).

Imports neither torch nor jax. Typical use from the JAX trainer, one call per GRPO group::

    client = BridgeClient(["ipc://bridge.sock"], deadline_s=120)
    future = client.submit_group(clip, [[Keyframe(3, "the red circle"), ...] for each rollout])
    result = future.result()          # a GroupResult, never raises
    if result.ok:
        masks = result.rollouts[n].masks  # bool [T, H, W]

Behaviour:

- every request has a deadline; when it passes, the group future resolves to a ``GroupResult`` with
  ``status="timed_out"`` (and no rollouts), the other calls raise :class:`BridgeTimeout` — never a silent zero;
- an attempt that gets no reply within ``attempt_timeout_s``, or a retryable error (``worker_died``; after a
  pause of 0.5 s doubling per attempt, ``overloaded``), is re-sent (up to ``retries`` times), to the next
  server;
- several addresses are used round-robin (a remote pool over tcp://), with health tracking
  (:class:`sam2_bridge.wire.pool.BridgePool`): a bridge that answers with a wrong token, another protocol version, or
  too slowly (no answer within ``attempt_timeout_s``) is dropped with a warning and what it held goes to the
  others; a bridge whose connection drops gets what it held re-sent to the others at once;
- a request keeps its id over every attempt, and the first reply with that id is the one used: a later reply
  (a slow bridge answering after the re-send was answered, a dropped bridge) is discarded and counted
  (:attr:`BridgeClient.stats`), never used twice; the future's ``address`` names the bridge that answered;
- each request carries its remaining deadline (``deadline_s``), so a server drops it unstarted once the client
  has given up, and the shared ``token`` when one is given (a server started with ``--token-file``);
- a server whose connection drops (its process died, or it stopped answering zmq heartbeats for
  ``heartbeat_timeout_s``) gets the requests it held re-sent at once: they reach the restarted server as soon
  as it listens on the same address again, instead of waiting out their attempt timeout;
- with ``local_server`` (a :class:`LocalServer`), a dead server process is restarted and the requests it held
  are re-sent at once; a server that exits because its workers cannot start (exit status 3) is not restarted:
  its requests fail with ``server_failed``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from sam2_bridge.wire import protocol
from sam2_bridge.wire.command import read_token_file
from sam2_bridge.wire.pool import BridgePool, LocalServer
from sam2_bridge.wire.protocol import FrameRef, Keyframe, RolloutResult


class BridgeError(RuntimeError):
    """The bridge answered with a non-retryable error (or retries ran out); ``code`` as in the protocol."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class BridgeTimeout(BridgeError):
    """No answer before the request's deadline."""

    def __init__(self, message: str):
        super().__init__("timed_out", message)


@dataclasses.dataclass(frozen=True)
class GroupResult:
    """Answer to one GRPO group's reward query.

    ``status``: "ok" | "timed_out" | "error". ``rollouts`` (one :class:`RolloutResult` per rollout: boxes per
    keyframe in original-frame pixels, masks bool [T, H, W]) is empty unless ok. ``timings``: seconds per
    stage on the server plus ``roundtrip_s`` measured here; ``attempts``: sends used.
    """

    status: str
    rollouts: tuple[RolloutResult, ...] = ()
    n_unparseable: int = 0
    n_detections: int = 0
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    attempts: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_status(self) -> GroupResult:
        if self.status == "timed_out":
            raise BridgeTimeout(self.error)
        if self.status != "ok":
            raise BridgeError("error", self.error)
        return self


@dataclasses.dataclass
class _Pending:
    future: concurrent.futures.Future
    req_id: str
    req_type: str
    payload: bytes
    deadline: float
    submitted: float
    body: bytes = b""  # the packed body, framed again per attempt (each attempt carries its own deadline_s)
    version: int = protocol.PROTOCOL_VERSION  # the lowest version that carries the body's fields
    attempts: int = 0
    attempt_deadline: float = 0.0
    address: str = ""
    sent_at: float = 0.0
    paused: bool = False  # waiting out the pause after an 'overloaded' reply (not a slow bridge)


class BridgeClient:
    """Futures over bridge servers (see the module docstring). Thread-safe; one I/O thread inside."""

    def __init__(
        self,
        addresses: Sequence[str] | str,
        deadline_s: float = 600.0,
        attempt_timeout_s: float | None = None,
        retries: int = 2,
        local_server: LocalServer | None = None,
        max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
        token: str | None = None,
        token_file: str | None = None,
        heartbeat_timeout_s: float = 5.0,
    ):
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("BridgeClient needs at least one address")
        if local_server is not None and local_server.address not in self.addresses:
            raise ValueError(f"local server address {local_server.address} is not among {self.addresses}")
        if token is not None and token_file is not None:
            raise ValueError("BridgeClient: give token or token_file, not both")
        if token_file is not None:
            token = read_token_file(token_file)
        self.token = token
        self.deadline_s = deadline_s
        self.attempt_timeout_s = attempt_timeout_s or deadline_s
        self.retries = retries
        self.local_server = local_server
        self.max_message_bytes = max_message_bytes
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._ctx = zmq.Context()
        self._wake_addr = f"inproc://wake-{uuid.uuid4().hex}"
        self._wake_recv = self._ctx.socket(zmq.PAIR)
        self._wake_recv.bind(self._wake_addr)
        self._wake_send = self._ctx.socket(zmq.PAIR)
        self._wake_send.connect(self._wake_addr)
        self._wake_lock = threading.Lock()
        self._outbox: queue.Queue = queue.Queue()
        self.pool = BridgePool(self.addresses, protected=[local_server.address] if local_server else [])
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sam2-bridge-client", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------- public

    def submit(self, req_type: str, body: dict[str, Any], deadline_s: float | None = None) -> concurrent.futures.Future:
        """Future of the decoded reply body (a dict); raises BridgeError / BridgeTimeout on failure. The future
        carries ``req_id`` (the request's id, the same in every attempt), ``attempts`` and, once answered,
        ``address`` (the bridge whose reply was used)."""
        if self._closed:
            raise RuntimeError("BridgeClient is closed")
        req_id = uuid.uuid4().hex
        packed = protocol.pack_body(body)
        # the lowest version that carries the body: a request without version-3 fields still reaches a
        # version-2 bridge, one with them gets bad_version from it instead of being silently misread
        version = protocol.request_version(body)
        now = time.monotonic()
        deadline = now + (deadline_s or self.deadline_s)
        # framed here once (a too-large request fails in the caller); re-framed per resend with its deadline
        payload = protocol.frame_request(
            req_id,
            req_type,
            packed,
            token=self.token,
            deadline_s=deadline - now,
            max_message_bytes=self.max_message_bytes,
            version=version,
        )
        pending = _Pending(concurrent.futures.Future(), req_id, req_type, payload, deadline, now, packed, version)
        pending.future.req_id = req_id  # kept over every attempt: the first reply with it is the one used
        self._outbox.put(pending)
        with self._wake_lock:
            self._wake_send.send(b"")
        return pending.future

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the I/O thread: ``sent``, ``resent``, ``dropped``, ``late_replies``,
        ``discarded_from_dropped`` (see :class:`sam2_bridge.wire.pool.BridgePool`)."""
        return dict(self.pool.stats)

    def health(self, deadline_s: float = 10.0) -> dict[str, Any]:
        return self.submit("health", {}, deadline_s).result()

    def wait_ready(self, timeout_s: float = 300.0, workers: int = 1) -> dict[str, Any]:
        """Poll ``health`` until at least ``workers`` workers are ready (BridgeError ``server_failed`` at once
        when the local server exited because its workers cannot start)."""
        end = time.monotonic() + timeout_s
        while True:
            if self.local_server is not None and self.local_server.failed():
                raise BridgeError(
                    "server_failed",
                    f"the bridge server {self.local_server.address} exited: its workers could not start (see its log)",
                )
            try:
                info = self.health(deadline_s=min(5.0, max(0.5, end - time.monotonic())))
                if sum(w["ready"] for w in info["workers"]) >= workers:
                    return info
            except BridgeError:
                pass
            if time.monotonic() > end:
                raise BridgeTimeout(f"bridge not ready after {timeout_s} s")
            time.sleep(0.2)

    def ground(
        self,
        frames: np.ndarray | FrameRef,
        keyframes: Sequence[Keyframe],
        deadline_s: float | None = None,
        contexts: Sequence[str | None] | None = None,
    ) -> protocol.GroundReply:
        """Boxes per keyframe. ``contexts``: System 1's rationale per keyframe (None entries: none), already cut
        to the budget (``omnir1_jax.rewards.extract_rationale``); needs a version-3 bridge."""
        body = protocol.GroundRequest(frames, tuple(keyframes), None if contexts is None else tuple(contexts)).to_body()
        return protocol.GroundReply.from_body(self.submit("ground", body, deadline_s).result())

    def segment(
        self,
        clip: np.ndarray | FrameRef,
        num_rollouts: int,
        det_rollout,
        det_frame,
        det_boxes,
        deadline_s: float | None = None,
    ) -> protocol.SegmentReply:
        body = protocol.SegmentRequest(clip, num_rollouts, det_rollout, det_frame, det_boxes).to_body()
        return protocol.SegmentReply.from_body(self.submit("segment", body, deadline_s).result())

    def judge(self, prompts: Sequence[str], max_new_tokens: int = 8, deadline_s: float | None = None) -> list[str]:
        """Greedy judge continuations, one per prompt in order (a bridge started with ``--judge``); raises
        :class:`BridgeError` (code ``no_judge`` without one) / :class:`BridgeTimeout`."""
        body = protocol.JudgeRequest(tuple(prompts), max_new_tokens).to_body()
        return list(protocol.JudgeReply.from_body(self.submit("judge", body, deadline_s).result()).texts)

    def submit_group(
        self,
        clip: np.ndarray | FrameRef,
        rollouts: Sequence[Sequence[Keyframe]],
        deadline_s: float | None = None,
        contexts: Sequence[str | None] | None = None,
    ) -> concurrent.futures.Future:
        """Future of a :class:`GroupResult` for one GRPO group (never raises; check ``.status``).

        ``contexts`` (``bridge.s2_context``): System 1's rationale per rollout, already cut to the budget
        (``omnir1_jax.rewards.extract_rationale(text, max_chars)``), handed to System 2's grounding prompt for
        every keyframe of that rollout; None (the default) sends a request an older (version-2) bridge serves."""
        request = protocol.GroupRequest(
            clip, tuple(tuple(r) for r in rollouts), None if contexts is None else tuple(contexts)
        )
        inner = self.submit("ground_and_segment", request.to_body(), deadline_s)
        outer: concurrent.futures.Future = concurrent.futures.Future()
        start = time.monotonic()

        def done(f: concurrent.futures.Future) -> None:
            attempts = getattr(f, "attempts", 0)
            try:
                reply = protocol.GroupReply.from_body(f.result())
            except BridgeTimeout as exc:
                outer.set_result(GroupResult("timed_out", attempts=attempts, error=str(exc)))
                return
            except Exception as exc:  # BridgeError or an invalid reply
                outer.set_result(GroupResult("error", attempts=attempts, error=str(exc)))
                return
            timings = dict(reply.timings, roundtrip_s=time.monotonic() - start)
            outer.set_result(
                GroupResult("ok", reply.rollout_results(), reply.n_unparseable, reply.n_detections, timings, attempts)
            )

        inner.add_done_callback(done)
        return outer

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._wake_lock:
            self._wake_send.send(b"")
        self._thread.join(timeout=10)
        self._wake_send.close()
        self._wake_recv.close()
        self._ctx.term()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ I/O thread

    def _connect(self, address: str) -> tuple[zmq.Socket, zmq.Socket]:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # zmq heartbeats: a server that vanished without closing the connection (a dead host) is noticed too
        ivl = max(100, int(self.heartbeat_timeout_s * 1000) // 3)
        sock.setsockopt(zmq.HEARTBEAT_IVL, ivl)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.heartbeat_timeout_s * 1000))
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sock.connect(address)
        return sock, monitor

    def _send(self, p: _Pending, pending: dict[str, _Pending], socks, avoid: str | None = None) -> None:
        """Send an attempt of ``p`` to the next live bridge (not ``avoid`` when another is connected); fails it
        with ``no_bridge`` when every bridge of the pool was dropped."""
        address = self.pool.pick(avoid)
        if address is None:
            self._fail(
                p,
                pending,
                BridgeError("no_bridge", "every bridge of the pool was dropped: " + self.pool.describe_dropped()),
            )
            return
        p.address, p.paused = address, False
        now = time.monotonic()
        if p.attempts:  # a resend: the deadline it carries is what is left now
            p.payload = protocol.frame_request(
                p.req_id,
                p.req_type,
                p.body,
                token=self.token,
                deadline_s=max(0.0, p.deadline - now),
                max_message_bytes=self.max_message_bytes,
                version=p.version,
            )
            self.pool.stats["resent"] += 1
        p.attempts += 1
        p.attempt_deadline = min(p.deadline, now + self.attempt_timeout_s)
        p.sent_at = now
        self.pool.stats["sent"] += 1
        socks[p.address].send(p.payload, copy=False)

    def _fail(self, p: _Pending, pending: dict[str, _Pending], exc: BaseException) -> None:
        pending.pop(p.req_id, None)
        p.future.attempts = p.attempts
        p.future.set_exception(exc)

    def _retry_or_fail(
        self, p: _Pending, pending: dict[str, _Pending], socks, code: str, msg: str, force: bool = False
    ) -> None:
        """Re-send ``p`` (to another bridge when there is one) while retries (or, with ``force``: a bridge was
        dropped, which costs no retry) and its deadline allow; otherwise fail it with ``code``."""
        if (force or p.attempts <= self.retries) and time.monotonic() < p.deadline:
            self._send(p, pending, socks, avoid=p.address)
            return
        self._fail(p, pending, BridgeTimeout(msg) if code == "timed_out" else BridgeError(code, msg))

    def _drop(self, address: str, reason: str, pending: dict[str, _Pending], socks) -> None:
        """Drop ``address`` from the pool and re-send everything it held to the others."""
        self.pool.drop(address, reason)
        for q in [q for q in pending.values() if q.address == address]:
            self._retry_or_fail(q, pending, socks, "no_bridge", f"bridge {address} dropped: {reason}", force=True)

    def _loop(self) -> None:
        pairs = {a: self._connect(a) for a in dict.fromkeys(self.addresses)}
        socks = {a: s for a, (s, _) in pairs.items()}
        monitors = {m: a for a, (_, m) in pairs.items()}
        poller = zmq.Poller()
        poller.register(self._wake_recv, zmq.POLLIN)
        for s in socks.values():
            poller.register(s, zmq.POLLIN)
        for m in monitors:
            poller.register(m, zmq.POLLIN)
        by_sock = {s: a for a, s in socks.items()}
        pending: dict[str, _Pending] = {}
        while not self._closed:
            timeout_ms = 200
            if pending:
                nearest = min(min(p.attempt_deadline, p.deadline) for p in pending.values())
                timeout_ms = int(min(200, max(0.0, nearest - time.monotonic()) * 1000)) + 1
            events = dict(poller.poll(timeout_ms))
            if self._wake_recv in events:
                while self._wake_recv.poll(0):
                    self._wake_recv.recv()
            while True:
                try:
                    p = self._outbox.get_nowait()
                except queue.Empty:
                    break
                pending[p.req_id] = p
                self._send(p, pending, socks)
            for address, sock in socks.items():
                if sock in events:
                    while sock.poll(0):
                        self._on_reply(sock.recv(), address, pending, socks)
            for mon, address in monitors.items():
                if mon in events:
                    self._on_monitor(mon, address, pending, socks)
            self._check_deadlines(pending, socks, by_sock)
        for p in pending.values():
            p.future.set_exception(BridgeError("closed", "client closed"))
        for s in socks.values():
            s.disable_monitor()
            s.close()
        for m in monitors:
            m.close()

    def _on_monitor(self, mon: zmq.Socket, address: str, pending: dict[str, _Pending], socks) -> None:
        """The connection to ``address`` came up or dropped. Dropped: what that server held is lost, re-send it
        now to another bridge when there is one (else it is queued in the socket and delivered when a server
        listens there again)."""
        dropped = False
        while mon.poll(0):
            try:
                event = recv_monitor_message(mon)
            except zmq.ZMQError:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                dropped, self.pool.connected[address] = True, False
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.pool.connected[address] = True
        if not dropped or (self.local_server is not None and address == self.local_server.address):
            return  # a local server's death is handled (restart + re-send) by _check_deadlines
        now = time.monotonic()
        for p in list(pending.values()):
            if p.address == address and p.sent_at < now:
                self._retry_or_fail(p, pending, socks, "disconnected", f"lost the connection to {address}")

    def _on_reply(self, payload: bytes, address: str, pending: dict[str, _Pending], socks) -> None:
        try:
            # replies are trusted more than requests: only the size bounds them (masks, boxes, many texts)
            limits = protocol.DecodeLimits(
                self.max_message_bytes, max_container_len=1 << 24, max_items=1 << 26, max_bool_elements=1 << 40
            )
            reply = protocol.decode_message(payload, limits)
        except protocol.ProtocolError as exc:
            if exc.code == "bad_version" and self.pool.can_drop(address):
                self._drop(address, f"wrong protocol version ({exc.message})", pending, socks)
            return  # not ours to match; the attempt timeout will retry
        if address in self.pool.dropped:
            self.pool.stats["discarded_from_dropped"] += 1
            return  # whatever it answers, it was re-sent elsewhere: never used
        p = pending.get(reply.get("id"))
        if p is None:
            self.pool.stats["late_replies"] += 1
            return  # a late answer to a request already answered or given up
        if reply.get("ok") is True:
            del pending[p.req_id]
            p.future.attempts = p.attempts
            p.future.address = address
            p.future.set_result(reply.get("body", {}))
            return
        err = reply.get("error") or {}
        code, msg = str(err.get("code", "internal")), str(err.get("message", ""))
        if code in ("unauthorized", "bad_version") and self.pool.can_drop(address):
            why = "wrong token (unauthorized)" if code == "unauthorized" else f"wrong protocol version ({msg})"
            self._drop(address, why, pending, socks)  # p goes to another bridge with the rest
        elif code == "overloaded" and p.attempts <= self.retries:
            # a full queue: resending at once would be refused again; the attempt timeout resends it after a
            # pause (0.5 s, 1 s, 2 s ... per attempt), so a burst drains instead of failing
            p.attempt_deadline = min(p.deadline, time.monotonic() + 0.5 * 2 ** (p.attempts - 1))
            p.paused = True
        elif err.get("retryable"):
            self._retry_or_fail(p, pending, socks, code, msg)
        else:
            self._fail(p, pending, BridgeError(code, msg))

    def _check_deadlines(self, pending: dict[str, _Pending], socks, by_sock) -> None:
        now = time.monotonic()
        server = self.local_server
        if server is not None and server.proc is not None and not server.alive():
            if server.failed():  # its workers cannot start: restarting would fail the same way
                for p in list(pending.values()):
                    if p.address == server.address:
                        self._fail(
                            p,
                            pending,
                            BridgeError(
                                "server_failed",
                                f"the bridge server {server.address} exited: its workers could not start (see its log)",
                            ),
                        )
            else:
                server.restart()
                for p in list(pending.values()):
                    if p.address == server.address:
                        self._retry_or_fail(p, pending, socks, "server_died", "local bridge server died")
        for p in list(pending.values()):
            if p.req_id not in pending:
                continue  # re-sent or failed above, by a drop
            if now >= p.deadline:
                self._fail(
                    p,
                    pending,
                    BridgeTimeout(
                        f"{p.req_type} request {p.req_id} got no answer within its deadline "
                        f"({p.deadline - p.submitted:.1f} s, {p.attempts} attempt(s))"
                    ),
                )
            elif now >= p.attempt_deadline:
                if p.paused:  # the pause after 'overloaded' is over: not the bridge's slowness
                    p.paused = False
                    self._retry_or_fail(p, pending, socks, "overloaded", "the bridge stayed overloaded")
                elif self.pool.can_drop(p.address):
                    self._drop(
                        p.address,
                        f"slow: no answer within attempt_timeout_s = {self.attempt_timeout_s:g} s",
                        pending,
                        socks,
                    )
                else:
                    self._retry_or_fail(p, pending, socks, "timed_out", "attempt timed out")
