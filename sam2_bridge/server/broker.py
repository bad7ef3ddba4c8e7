"""The bridge's broker: a ZeroMQ broker in front of one worker process per device (the server of
``python -m sam2_bridge.serve``).

Clients (DEALER) talk to the front ROUTER socket. The broker checks each message's header and envelope
(malformed ones get an error reply at once, and the connection stays usable), answers ``health`` itself (and
``judge`` with the error ``no_judge`` when the bridge has no judge), and queues the rest for the next idle
worker (subprocesses of :mod:`sam2_bridge.server.worker`, one per GPU or CPU worker). A worker that dies (crash,
OOM, SIGKILL) is restarted; the request it held is answered with the retryable error ``worker_died`` so the
client re-sends it. A worker that fails to START (it exits before it reports ready: a missing config, missing
weights) is restarted after a growing pause (``start_backoff_s`` doubled each time, at most 30 s); after
``max_start_failures`` failed starts in a row the server stops and :meth:`Server.serve_forever` returns
:data:`~sam2_bridge.wire.command.EXIT_WORKER_START` with :attr:`Server.fatal` naming the worker's first error.
One log line per request: id, type, worker, status, queue / compute / total seconds, bytes in / out.

Before a request is queued the broker checks, in this order and without decoding the body until the token
matched: the framing, the envelope, the shared token (``token``; constant-time compare), then the body's
decoding limits and the :class:`~sam2_bridge.wire.budget.Budget` (``too_large`` at once), then the queue's room
(count and bytes; ``overloaded``, retryable). A request carries its deadline (``deadline_s`` in the envelope):
one whose deadline passed while it waited is answered ``expired`` instead of being dispatched.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import zmq

from sam2_bridge.wire import protocol
from sam2_bridge.wire.budget import Budget
from sam2_bridge.wire.command import EXIT_WORKER_START

log = logging.getLogger("sam2_bridge")


def check_address(address: str, allow_remote: bool = False) -> str:
    """``ipc://PATH`` or ``tcp://HOST:PORT``; a non-loopback host requires ``allow_remote``."""
    if address.startswith("ipc://") and len(address) > 6:
        return address
    if not address.startswith("tcp://"):
        raise ValueError(f"--address {address!r}: expected ipc://PATH or tcp://HOST:PORT")
    host, sep, port = address[6:].rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--address {address!r}: missing :PORT")
    host = host.strip("[]")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback and not allow_remote:
        raise ValueError(f"--address {address!r} is not a loopback address; pass --allow-remote to bind it")
    return address


@dataclasses.dataclass
class _Worker:
    index: int
    device: str
    proc: subprocess.Popen | None = None
    ready: bool = False
    busy_with: tuple | None = None  # client, id, type, received, bytes in, dispatched
    restarts: int = 0
    pid: int = 0
    served: int = 0
    failed_starts: int = 0  # in a row; reset when the worker reports ready
    first_error: str = ""  # what the worker reported on its first failed start
    error_reported: bool = False  # first_error came from the worker itself (not just its exit status)
    respawn_at: float = 0.0  # monotonic time of the next start after a failed one (0: none pending)


class Server:
    """Runs the broker loop until :meth:`stop` (or SIGTERM via ``serve``)."""

    def __init__(
        self,
        address: str,
        handler_config: dict[str, Any],
        devices: list[str],
        allow_remote: bool = False,
        torch_threads: int = 0,
        max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
        max_queue: int = 1024,
        token: str | None = None,
        budget: Budget | None = None,
        limits: protocol.DecodeLimits | None = None,
        max_start_failures: int = 5,
        start_backoff_s: float = 1.0,
    ):
        self.address = check_address(address, allow_remote)
        self.budget = budget or Budget()
        self.limits = limits or protocol.DecodeLimits(max_message_bytes=max_message_bytes)
        self.handler_config = dict(handler_config, budget=self.budget.to_json())
        self.torch_threads = torch_threads
        self.max_message_bytes = self.limits.max_message_bytes
        self.max_queue = max_queue
        self.token = token.encode() if token else None
        if max_start_failures < 1 or start_backoff_s < 0:
            raise ValueError(
                f"max_start_failures = {max_start_failures} (>= 1), start_backoff_s = {start_backoff_s} (>= 0)"
            )
        self.max_start_failures = max_start_failures
        self.start_backoff_s = start_backoff_s
        self.fatal = ""  # set when the server gives up (a worker failed to start max_start_failures times)
        self.ctx = zmq.Context()
        self.front = self.ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        # a hard cap far above the protocol limit: messages in between get a 'too_large' reply
        self.front.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_message_bytes + protocol.HEADER_BYTES + 65536)
        self.front.bind(self.address)
        self._tmp = tempfile.mkdtemp(prefix="sam2_bridge_")
        self.backend_address = f"ipc://{self._tmp}/backend.sock"
        self.backend = self.ctx.socket(zmq.ROUTER)
        self.backend.setsockopt(zmq.LINGER, 0)
        self.backend.bind(self.backend_address)
        self.workers = [_Worker(i, d) for i, d in enumerate(devices)]
        self.queue: collections.deque = collections.deque()
        self.queued_bytes = 0
        self.started = time.time()
        self._running = False
        for w in self.workers:
            self._spawn(w)

    # ------------------------------------------------------------------------------------- workers

    def _spawn(self, w: _Worker) -> None:
        cfg = dict(self.handler_config, device=w.device)
        argv = [
            sys.executable,
            "-m",
            "sam2_bridge.server.worker",
            "--backend",
            self.backend_address,
            "--index",
            str(w.index),
            "--config",
            json.dumps(cfg),
            "--torch-threads",
            str(self.torch_threads),
            "--max-message-bytes",
            str(self.max_message_bytes),
            "--limits",
            json.dumps(dataclasses.asdict(self.limits)),
        ]
        env = dict(os.environ)
        if w.device.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = w.device.split(":", 1)[1]
            argv[argv.index("--config") + 1] = json.dumps(dict(cfg, device="cuda"))
        w.proc = subprocess.Popen(argv, env=env)
        w.pid, w.ready, w.busy_with = w.proc.pid, False, None

    def _check_workers(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.proc is None and w.respawn_at and now >= w.respawn_at:
                w.respawn_at = 0.0
                self._spawn(w)
            if w.proc is None or w.proc.poll() is None:
                continue
            code = w.proc.returncode
            if w.busy_with is not None:
                client, req_id, req_type, received, size, dispatched, version = w.busy_with
                self._reply(
                    client,
                    protocol.make_error(
                        req_id,
                        req_type,
                        "worker_died",
                        f"worker {w.index} exited with {code} during the request",
                        retryable=True,
                        version=version,
                    ),
                    req_id,
                    req_type,
                    w.index,
                    "worker_died",
                    received,
                    dispatched,
                    size,
                )
            w.restarts += 1
            if w.ready:  # it had started: restart it at once
                log.warning("worker %d (pid %d) exited with %s; restarting", w.index, w.pid, code)
                self._spawn(w)
                continue
            w.failed_starts += 1
            if not w.first_error:
                w.first_error = f"worker {w.index} exited with {code} before it was ready"
            if w.failed_starts >= self.max_start_failures:
                self.fatal = (
                    f"worker {w.index} ({w.device}) failed to start {w.failed_starts} times in a row; "
                    f"its first error: {w.first_error}"
                )
                log.error("%s; stopping", self.fatal)
                self.stop()
                return
            pause = min(30.0, self.start_backoff_s * 2 ** (w.failed_starts - 1))
            log.warning(
                "worker %d (pid %d) exited with %s before it was ready (failed start %d of %d); restarting in %.1f s",
                w.index,
                w.pid,
                code,
                w.failed_starts,
                self.max_start_failures,
                pause,
            )
            w.proc, w.ready, w.busy_with = None, False, None
            w.respawn_at = now + pause

    def health_body(self) -> dict[str, Any]:
        cfg = self.handler_config
        return {
            "version": protocol.PROTOCOL_VERSION,
            "segmenter": cfg.get("segmenter", "?"),
            "grounder": cfg.get("grounder", "?"),
            "judge": cfg.get("judge"),
            "uptime_s": time.time() - self.started,
            "queued": len(self.queue),
            "queued_bytes": self.queued_bytes,
            "budget": self.budget.to_json(),
            "token_required": self.token is not None,
            "workers": [
                {
                    "index": w.index,
                    "pid": w.pid,
                    "device": w.device,
                    "ready": w.ready,
                    "busy_with": w.busy_with[1] if w.busy_with else None,
                    "restarts": w.restarts,
                    "served": w.served,
                    "failed_starts": w.failed_starts,
                }
                for w in self.workers
            ],
        }

    # ------------------------------------------------------------------------------------- messages

    def _reply(
        self,
        client: bytes,
        payload: bytes,
        req_id: str,
        req_type: str,
        worker: Any,
        status: str,
        received: float,
        started: float,
        size_in: int,
        compute_s: float = 0.0,
    ) -> None:
        self.front.send_multipart([client, payload])
        now = time.perf_counter()
        log.info(
            "request id=%s type=%s worker=%s status=%s queue_s=%.4f compute_s=%.4f total_s=%.4f "
            "bytes_in=%d bytes_out=%d",
            req_id,
            req_type,
            worker,
            status,
            started - received,
            compute_s,
            now - received,
            size_in,
            len(payload),
        )

    def _error(
        self,
        client: bytes,
        req_id: str,
        req_type: str,
        code: str,
        message: str,
        received: float,
        size: int,
        version: int = protocol.PROTOCOL_VERSION,
        retryable: bool = False,
    ) -> None:
        self._reply(
            client,
            protocol.make_error(req_id, req_type, code, message, retryable, version=version),
            req_id,
            req_type,
            "-",
            code,
            received,
            received,
            size,
        )

    def _on_front(self) -> None:
        frames = self.front.recv_multipart()
        received = time.perf_counter()
        arrived = time.monotonic()
        client, payload = frames[0], b"".join(frames[1:])
        req_id, req_type, version = "?", "?", protocol.PROTOCOL_VERSION
        try:
            env = protocol.read_envelope(payload, self.limits)  # framing + envelope; the body is not decoded yet
            version = env.version
            req_id = env.id or "?"
            if self.token is not None and not (
                isinstance(env.token, str) and hmac.compare_digest(env.token.encode(), self.token)
            ):
                raise protocol.ProtocolError(
                    "unauthorized", "missing or wrong token (this bridge was started with --token-file)"
                )
            req_id, req_type = protocol.check_envelope(env)
            if req_type == "health":
                self._reply(
                    client,
                    protocol.make_reply(req_id, req_type, self.health_body(), version=version),
                    req_id,
                    req_type,
                    "-",
                    "ok",
                    received,
                    received,
                    len(payload),
                )
                return
            if req_type == "judge" and not self.handler_config.get("judge"):  # no worker is tied up
                raise protocol.ProtocolError("no_judge", "this bridge was started without --judge")
            # the budget, from the fields alone (arrays are views of the message, not copies)
            body = protocol.decode_body(env, self.limits, copy_arrays=False)
            protocol.check_request_version(body, version)  # a version-3 field in an older message: bad_field
            request = protocol.REQUEST_CLASSES[req_type].from_body(body)
            self.budget.check_request(request)
            del request, body
            if len(payload) > self.budget.max_queued_bytes:
                raise protocol.ProtocolError(
                    "too_large", f"request of {len(payload)} bytes > --max-queued-bytes {self.budget.max_queued_bytes}"
                )
            if len(self.queue) >= self.max_queue or self.queued_bytes + len(payload) > self.budget.max_queued_bytes:
                raise protocol.ProtocolError(
                    "overloaded", f"queue full ({len(self.queue)} requests, {self.queued_bytes} bytes)", retryable=True
                )
        except protocol.ProtocolError as exc:
            self._error(
                client,
                req_id,
                req_type if isinstance(req_type, str) else "?",
                exc.code,
                exc.message,
                received,
                len(payload),
                version,
                exc.retryable,
            )
            return
        except Exception as exc:  # a validation bug must not take the broker (and every client) down
            log.exception("request id=%s: unexpected error while checking it", req_id)
            self._error(
                client,
                req_id,
                req_type if isinstance(req_type, str) else "?",
                "internal",
                f"{type(exc).__name__}: {exc}",
                received,
                len(payload),
                version,
            )
            return
        deadline = None if env.deadline_s is None else arrived + float(env.deadline_s)
        self.queue.append((client, req_id, req_type, received, payload, deadline, version))
        self.queued_bytes += len(payload)
        self._dispatch()

    def _on_backend(self) -> None:
        frames = self.backend.recv_multipart()
        wid = int(frames[0][1:].decode())
        w = self.workers[wid]
        if frames[1] == b"READY":
            info = json.loads(frames[2])
            w.ready, w.pid, w.failed_starts = True, int(info.get("pid", w.pid)), 0
            log.info("worker %d ready (pid %d, %s)", w.index, w.pid, w.device)
        elif frames[1] == b"FAILED":
            error = str(json.loads(frames[2]).get("error", "?"))
            log.error("worker %d (pid %d) failed to start: %s", w.index, w.pid, error)
            if not w.error_reported:  # its FAILED notice may arrive after its exit was seen
                w.first_error, w.error_reported = error, True
        else:
            client, payload, stats = frames[1], frames[2], json.loads(frames[3])
            if w.busy_with is not None:
                _, req_id, req_type, received, size, dispatched, _ = w.busy_with
                self._reply(
                    client,
                    payload,
                    req_id,
                    req_type,
                    w.index,
                    stats.get("status", "?"),
                    received,
                    dispatched,
                    size,
                    stats.get("compute_s", 0.0),
                )
            w.busy_with = None
            w.served += 1
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self.workers:
            if not w.ready or w.busy_with is not None or w.proc is None or w.proc.poll() is not None:
                continue
            while self.queue:
                client, req_id, req_type, received, payload, deadline, version = self.queue.popleft()
                self.queued_bytes -= len(payload)
                if deadline is not None and time.monotonic() > deadline:  # the client gave up: do not start it
                    self._error(
                        client,
                        req_id,
                        req_type,
                        "expired",
                        "the request's deadline passed while it was queued; dropped",
                        received,
                        len(payload),
                        version,
                    )
                    continue
                w.busy_with = (client, req_id, req_type, received, len(payload), time.perf_counter(), version)
                self.backend.send_multipart(
                    [f"w{w.index}".encode(), client, payload, b"" if deadline is None else repr(deadline).encode()]
                )
                break
            if not self.queue:
                return

    # ----------------------------------------------------------------------------------------- loop

    def serve_forever(self, poll_ms: int = 100) -> int:
        """Serve until :meth:`stop`; 0, or :data:`EXIT_WORKER_START` when a worker never started
        (:attr:`fatal` says why)."""
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        self._running = True
        log.info(
            "serving on %s with %d worker(s): %s",
            self.address,
            len(self.workers),
            ", ".join(w.device for w in self.workers),
        )
        while self._running:
            events = dict(poller.poll(poll_ms))
            if self.backend in events:
                self._on_backend()
            if self.front in events:
                self._on_front()
            self._check_workers()
        self.close()
        return EXIT_WORKER_START if self.fatal else 0

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers:
            if w.proc is not None:
                try:
                    w.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
        self.front.close()
        self.backend.close()
        self.ctx.term()
        for name in os.listdir(self._tmp):
            os.unlink(os.path.join(self._tmp, name))
        os.rmdir(self._tmp)
