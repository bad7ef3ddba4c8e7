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
- several addresses are used round-robin (a remote pool over tcp://);
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
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Sequence

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from sam2_bridge import protocol as P
from sam2_bridge.protocol import FrameRef, Keyframe, RolloutResult


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

    def raise_for_status(self) -> "GroupResult":
        if self.status == "timed_out":
            raise BridgeTimeout(self.error)
        if self.status != "ok":
            raise BridgeError("error", self.error)
        return self


def _die_with_parent() -> None:
    """In the forked child: ask Linux for SIGTERM when the parent (thread) dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


class LocalServer:
    """A bridge server started (and restarted) by this process: ``python -m sam2_bridge.serve ARGS``."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, log_path: str | None = None):
        if "--address" not in args:
            raise ValueError("LocalServer args must contain --address")
        self.args = list(args)
        self.address = self.args[self.args.index("--address") + 1]
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> "LocalServer":
        """Start the server process. On Linux it gets SIGTERM when the thread that started it ends (the
        trainer's main thread, or the client's I/O thread after a restart), so a trainer killed with SIGKILL
        leaves no orphaned bridge behind."""
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen([sys.executable, "-m", "sam2_bridge.serve", *self.args],
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        if out is not None:
            out.close()  # the child holds its own descriptor
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failed(self) -> bool:
        """The server exited because a worker could not start (restarting it would fail the same way)."""
        from sam2_bridge.server import EXIT_WORKER_START

        return self.proc is not None and self.proc.poll() == EXIT_WORKER_START

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.address.startswith("ipc://") and os.path.exists(self.address[6:]):
            os.unlink(self.address[6:])


@dataclasses.dataclass
class _Pending:
    future: concurrent.futures.Future
    req_id: str
    req_type: str
    payload: bytes
    deadline: float
    submitted: float
    body: bytes = b""  # the packed body, framed again per attempt (each attempt carries its own deadline_s)
    version: int = P.PROTOCOL_VERSION  # the lowest version that carries the body's fields
    attempts: int = 0
    attempt_deadline: float = 0.0
    address: str = ""
    sent_at: float = 0.0


class BridgeClient:
    """Futures over bridge servers (see the module docstring). Thread-safe; one I/O thread inside."""

    def __init__(self, addresses: Sequence[str] | str, deadline_s: float = 600.0,
                 attempt_timeout_s: float | None = None, retries: int = 2,
                 local_server: LocalServer | None = None,
                 max_message_bytes: int = P.DEFAULT_MAX_MESSAGE_BYTES, token: str | None = None,
                 token_file: str | None = None, heartbeat_timeout_s: float = 5.0):
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("BridgeClient needs at least one address")
        if local_server is not None and local_server.address not in self.addresses:
            raise ValueError(f"local server address {local_server.address} is not among {self.addresses}")
        if token is not None and token_file is not None:
            raise ValueError("BridgeClient: give token or token_file, not both")
        if token_file is not None:
            from sam2_bridge.serve import read_token_file

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
        self._round_robin = itertools.cycle(range(len(self.addresses)))
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sam2-bridge-client", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------- public

    def submit(self, req_type: str, body: dict[str, Any], deadline_s: float | None = None
               ) -> concurrent.futures.Future:
        """Future of the decoded reply body (a dict); raises BridgeError / BridgeTimeout on failure."""
        if self._closed:
            raise RuntimeError("BridgeClient is closed")
        req_id = uuid.uuid4().hex
        packed = P.pack_body(body)
        # the lowest version that carries the body: a request without version-3 fields still reaches a
        # version-2 bridge, one with them gets bad_version from it instead of being silently misread
        version = P.request_version(body)
        now = time.monotonic()
        deadline = now + (deadline_s or self.deadline_s)
        # framed here once (a too-large request fails in the caller); re-framed per resend with its deadline
        payload = P.frame_request(req_id, req_type, packed, token=self.token, deadline_s=deadline - now,
                                  max_message_bytes=self.max_message_bytes, version=version)
        pending = _Pending(concurrent.futures.Future(), req_id, req_type, payload, deadline, now, packed,
                           version)
        self._outbox.put(pending)
        with self._wake_lock:
            self._wake_send.send(b"")
        return pending.future

    def health(self, deadline_s: float = 10.0) -> dict[str, Any]:
        return self.submit("health", {}, deadline_s).result()

    def wait_ready(self, timeout_s: float = 300.0, workers: int = 1) -> dict[str, Any]:
        """Poll ``health`` until at least ``workers`` workers are ready (BridgeError ``server_failed`` at once
        when the local server exited because its workers cannot start)."""
        end = time.monotonic() + timeout_s
        while True:
            if self.local_server is not None and self.local_server.failed():
                raise BridgeError("server_failed", f"the bridge server {self.local_server.address} exited: its "
                                  "workers could not start (see its log)")
            try:
                info = self.health(deadline_s=min(5.0, max(0.5, end - time.monotonic())))
                if sum(w["ready"] for w in info["workers"]) >= workers:
                    return info
            except BridgeError:
                pass
            if time.monotonic() > end:
                raise BridgeTimeout(f"bridge not ready after {timeout_s} s")
            time.sleep(0.2)

    def ground(self, frames: np.ndarray | FrameRef, keyframes: Sequence[Keyframe],
               deadline_s: float | None = None, contexts: Sequence[str | None] | None = None) -> P.GroundReply:
        """Boxes per keyframe. ``contexts``: System 1's rationale per keyframe (None entries: none), already cut
        to the budget (``omnir1_jax.rewards.extract_rationale``); needs a version-3 bridge."""
        body = P.GroundRequest(frames, tuple(keyframes), None if contexts is None else tuple(contexts)).to_body()
        return P.GroundReply.from_body(self.submit("ground", body, deadline_s).result())

    def segment(self, clip: np.ndarray | FrameRef, num_rollouts: int, det_rollout, det_frame, det_boxes,
                deadline_s: float | None = None) -> P.SegmentReply:
        body = P.SegmentRequest(clip, num_rollouts, det_rollout, det_frame, det_boxes).to_body()
        return P.SegmentReply.from_body(self.submit("segment", body, deadline_s).result())

    def judge(self, prompts: Sequence[str], max_new_tokens: int = 8, deadline_s: float | None = None) -> list[str]:
        """Greedy judge continuations, one per prompt in order (a bridge started with ``--judge``); raises
        :class:`BridgeError` (code ``no_judge`` without one) / :class:`BridgeTimeout`."""
        body = P.JudgeRequest(tuple(prompts), max_new_tokens).to_body()
        return list(P.JudgeReply.from_body(self.submit("judge", body, deadline_s).result()).texts)

    def submit_group(self, clip: np.ndarray | FrameRef, rollouts: Sequence[Sequence[Keyframe]],
                     deadline_s: float | None = None, contexts: Sequence[str | None] | None = None
                     ) -> concurrent.futures.Future:
        """Future of a :class:`GroupResult` for one GRPO group (never raises; check ``.status``).

        ``contexts`` (``bridge.s2_context``): System 1's rationale per rollout, already cut to the budget
        (``omnir1_jax.rewards.extract_rationale(text, max_chars)``), handed to System 2's grounding prompt for
        every keyframe of that rollout; None (the default) sends a request an older (version-2) bridge serves."""
        request = P.GroupRequest(clip, tuple(tuple(r) for r in rollouts),
                                 None if contexts is None else tuple(contexts))
        inner = self.submit("ground_and_segment", request.to_body(), deadline_s)
        outer: concurrent.futures.Future = concurrent.futures.Future()
        start = time.monotonic()

        def done(f: concurrent.futures.Future) -> None:
            attempts = getattr(f, "attempts", 0)
            try:
                reply = P.GroupReply.from_body(f.result())
            except BridgeTimeout as exc:
                outer.set_result(GroupResult("timed_out", attempts=attempts, error=str(exc)))
                return
            except Exception as exc:  # BridgeError or an invalid reply
                outer.set_result(GroupResult("error", attempts=attempts, error=str(exc)))
                return
            timings = dict(reply.timings, roundtrip_s=time.monotonic() - start)
            outer.set_result(GroupResult("ok", reply.rollout_results(), reply.n_unparseable,
                                         reply.n_detections, timings, attempts))

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

    def __enter__(self) -> "BridgeClient":
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
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(address)
        return sock, monitor

    def _send(self, p: _Pending, socks: dict[str, zmq.Socket]) -> None:
        p.address = self.addresses[next(self._round_robin)]
        now = time.monotonic()
        if p.attempts:  # a resend: the deadline it carries is what is left now
            p.payload = P.frame_request(p.req_id, p.req_type, p.body, token=self.token,
                                        deadline_s=max(0.0, p.deadline - now),
                                        max_message_bytes=self.max_message_bytes, version=p.version)
        p.attempts += 1
        p.attempt_deadline = min(p.deadline, now + self.attempt_timeout_s)
        p.sent_at = now
        socks[p.address].send(p.payload, copy=False)

    def _retry_or_fail(self, p: _Pending, pending: dict[str, _Pending], socks, code: str, msg: str) -> None:
        if p.attempts <= self.retries and time.monotonic() < p.deadline:
            self._send(p, socks)
            return
        del pending[p.req_id]
        p.future.attempts = p.attempts
        exc = BridgeTimeout(msg) if code == "timed_out" else BridgeError(code, msg)
        p.future.set_exception(exc)

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
                self._send(p, socks)
            for sock in socks.values():
                if sock in events:
                    while sock.poll(0):
                        self._on_reply(sock.recv(), pending, socks)
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
        """The connection to ``address`` dropped: what that server held is lost, re-send it now (it is queued
        in the socket and delivered when a server listens there again, or goes to the next address)."""
        dropped = False
        while mon.poll(0):
            try:
                event = recv_monitor_message(mon)
            except zmq.ZMQError:
                return
            dropped = dropped or event["event"] == zmq.EVENT_DISCONNECTED
        if not dropped or (self.local_server is not None and address == self.local_server.address):
            return  # a local server's death is handled (restart + re-send) by _check_deadlines
        now = time.monotonic()
        for p in list(pending.values()):
            if p.address == address and p.sent_at < now:
                self._retry_or_fail(p, pending, socks, "disconnected", f"lost the connection to {address}")

    def _on_reply(self, payload: bytes, pending: dict[str, _Pending], socks) -> None:
        try:
            # replies are trusted more than requests: only the size bounds them (masks, boxes, many texts)
            reply = P.decode_message(payload, P.DecodeLimits(self.max_message_bytes, max_container_len=1 << 24,
                                                             max_items=1 << 26, max_bool_elements=1 << 40))
        except P.ProtocolError:
            return  # not ours to match; the attempt timeout will retry
        p = pending.get(reply.get("id"))
        if p is None:
            return  # a late answer to a request already answered or given up
        if reply.get("ok") is True:
            del pending[p.req_id]
            p.future.attempts = p.attempts
            p.future.set_result(reply.get("body", {}))
            return
        err = reply.get("error") or {}
        code, msg = str(err.get("code", "internal")), str(err.get("message", ""))
        if code == "overloaded" and p.attempts <= self.retries:
            # a full queue: resending at once would be refused again; the attempt timeout resends it after a
            # pause (0.5 s, 1 s, 2 s ... per attempt), so a burst drains instead of failing
            p.attempt_deadline = min(p.deadline, time.monotonic() + 0.5 * 2 ** (p.attempts - 1))
        elif err.get("retryable"):
            self._retry_or_fail(p, pending, socks, code, msg)
        else:
            del pending[p.req_id]
            p.future.attempts = p.attempts
            p.future.set_exception(BridgeError(code, msg))

    def _check_deadlines(self, pending: dict[str, _Pending], socks, by_sock) -> None:
        now = time.monotonic()
        server = self.local_server
        if server is not None and server.proc is not None and not server.alive():
            if server.failed():  # its workers cannot start: restarting would fail the same way
                for p in list(pending.values()):
                    if p.address == server.address:
                        del pending[p.req_id]
                        p.future.attempts = p.attempts
                        p.future.set_exception(BridgeError("server_failed", f"the bridge server {server.address} "
                                                           "exited: its workers could not start (see its log)"))
            else:
                server.restart()
                for p in list(pending.values()):
                    if p.address == server.address:
                        self._retry_or_fail(p, pending, socks, "server_died", "local bridge server died")
        for p in list(pending.values()):
            if now >= p.deadline:
                del pending[p.req_id]
                p.future.attempts = p.attempts
                p.future.set_exception(BridgeTimeout(
                    f"{p.req_type} request {p.req_id} got no answer within its deadline "
                    f"({p.deadline - p.submitted:.1f} s, {p.attempts} attempt(s))"))
            elif now >= p.attempt_deadline:
                self._retry_or_fail(p, pending, socks, "timed_out", "attempt timed out")
