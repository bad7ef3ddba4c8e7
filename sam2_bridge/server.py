"""The bridge server: a ZeroMQ broker in front of one worker process per device.

Clients (DEALER) talk to the front ROUTER socket. The broker checks each message's header and envelope
(malformed ones get an error reply at once, and the connection stays usable), answers ``health`` itself (and
``judge`` with the error ``no_judge`` when the bridge has no judge), and
queues the rest for the next idle worker (subprocesses of :mod:`sam2_bridge.worker`, one per GPU or CPU
worker). A worker that dies (crash, OOM, SIGKILL) is restarted; the request it held is answered with the
retryable error ``worker_died`` so the client re-sends it. One log line per request: id, type, worker,
status, queue / compute / total seconds, bytes in / out.
"""

from __future__ import annotations

import collections
import dataclasses
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

from sam2_bridge import protocol as P

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


class Server:
    """Runs the broker loop until :meth:`stop` (or SIGTERM via ``serve``)."""

    def __init__(self, address: str, handler_config: dict[str, Any], devices: list[str],
                 allow_remote: bool = False, torch_threads: int = 0,
                 max_message_bytes: int = P.DEFAULT_MAX_MESSAGE_BYTES, max_queue: int = 1024):
        self.address = check_address(address, allow_remote)
        self.handler_config = handler_config
        self.torch_threads = torch_threads
        self.max_message_bytes = max_message_bytes
        self.max_queue = max_queue
        self.ctx = zmq.Context()
        self.front = self.ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        # a hard cap far above the protocol limit: messages in between get a 'too_large' reply
        self.front.setsockopt(zmq.MAXMSGSIZE, 4 * max_message_bytes + P.HEADER_BYTES + 65536)
        self.front.bind(self.address)
        self._tmp = tempfile.mkdtemp(prefix="sam2_bridge_")
        self.backend_address = f"ipc://{self._tmp}/backend.sock"
        self.backend = self.ctx.socket(zmq.ROUTER)
        self.backend.setsockopt(zmq.LINGER, 0)
        self.backend.bind(self.backend_address)
        self.workers = [_Worker(i, d) for i, d in enumerate(devices)]
        self.queue: collections.deque = collections.deque()
        self.started = time.time()
        self._running = False
        for w in self.workers:
            self._spawn(w)

    # ------------------------------------------------------------------------------------- workers

    def _spawn(self, w: _Worker) -> None:
        cfg = dict(self.handler_config, device=w.device)
        argv = [sys.executable, "-m", "sam2_bridge.worker", "--backend", self.backend_address,
                "--index", str(w.index), "--config", json.dumps(cfg), "--torch-threads", str(self.torch_threads),
                "--max-message-bytes", str(self.max_message_bytes)]
        env = dict(os.environ)
        if w.device.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = w.device.split(":", 1)[1]
            argv[argv.index("--config") + 1] = json.dumps(dict(cfg, device="cuda"))
        w.proc = subprocess.Popen(argv, env=env)
        w.pid, w.ready, w.busy_with = w.proc.pid, False, None

    def _check_workers(self) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is not None:
                code = w.proc.returncode
                log.warning("worker %d (pid %d) exited with %s; restarting", w.index, w.pid, code)
                if w.busy_with is not None:
                    client, req_id, req_type, received, size, dispatched = w.busy_with
                    self._reply(client, P.make_error(req_id, req_type, "worker_died",
                                                     f"worker {w.index} exited with {code} during the request",
                                                     retryable=True),
                                req_id, req_type, w.index, "worker_died", received, dispatched, size)
                w.restarts += 1
                self._spawn(w)

    def health_body(self) -> dict[str, Any]:
        cfg = self.handler_config
        return {"version": P.PROTOCOL_VERSION, "segmenter": cfg.get("segmenter", "?"),
                "grounder": cfg.get("grounder", "?"), "judge": cfg.get("judge"),
                "uptime_s": time.time() - self.started,
                "queued": len(self.queue),
                "workers": [{"index": w.index, "pid": w.pid, "device": w.device, "ready": w.ready,
                             "busy_with": w.busy_with[1] if w.busy_with else None, "restarts": w.restarts,
                             "served": w.served}
                            for w in self.workers]}

    # ------------------------------------------------------------------------------------- messages

    def _reply(self, client: bytes, payload: bytes, req_id: str, req_type: str, worker: Any, status: str,
               received: float, started: float, size_in: int, compute_s: float = 0.0) -> None:
        self.front.send_multipart([client, payload])
        now = time.perf_counter()
        log.info("request id=%s type=%s worker=%s status=%s queue_s=%.4f compute_s=%.4f total_s=%.4f "
                 "bytes_in=%d bytes_out=%d", req_id, req_type, worker, status, started - received, compute_s,
                 now - received, size_in, len(payload))

    def _on_front(self) -> None:
        frames = self.front.recv_multipart()
        received = time.perf_counter()
        client, payload = frames[0], b"".join(frames[1:])
        req_id, req_type = "?", "?"
        try:
            message = P.decode_message(payload, self.max_message_bytes)
            req_id, req_type = P.peek_envelope(message)
        except P.ProtocolError as exc:
            self._reply(client, P.make_error(req_id, req_type, exc.code, exc.message), req_id, req_type, "-",
                        exc.code, received, received, len(payload))
            return
        if req_type == "health":
            self._reply(client, P.make_reply(req_id, req_type, self.health_body()), req_id, req_type, "-", "ok",
                        received, received, len(payload))
            return
        if req_type == "judge" and not self.handler_config.get("judge"):  # answered here: no worker is tied up
            self._reply(client, P.make_error(req_id, req_type, "no_judge", "this bridge was started without --judge"),
                        req_id, req_type, "-", "no_judge", received, received, len(payload))
            return
        if len(self.queue) >= self.max_queue:
            self._reply(client, P.make_error(req_id, req_type, "overloaded", "queue full", retryable=True),
                        req_id, req_type, "-", "overloaded", received, received, len(payload))
            return
        self.queue.append((client, req_id, req_type, received, payload))
        self._dispatch()

    def _on_backend(self) -> None:
        frames = self.backend.recv_multipart()
        wid = int(frames[0][1:].decode())
        w = self.workers[wid]
        if frames[1] == b"READY":
            info = json.loads(frames[2])
            w.ready, w.pid = True, int(info.get("pid", w.pid))
            log.info("worker %d ready (pid %d, %s)", w.index, w.pid, w.device)
        else:
            client, payload, stats = frames[1], frames[2], json.loads(frames[3])
            if w.busy_with is not None:
                _, req_id, req_type, received, size, dispatched = w.busy_with
                self._reply(client, payload, req_id, req_type, w.index, stats.get("status", "?"), received,
                            dispatched, size, stats.get("compute_s", 0.0))
            w.busy_with = None
            w.served += 1
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self.workers:
            if not self.queue:
                return
            if w.ready and w.busy_with is None and w.proc is not None and w.proc.poll() is None:
                client, req_id, req_type, received, payload = self.queue.popleft()
                w.busy_with = (client, req_id, req_type, received, len(payload), time.perf_counter())
                self.backend.send_multipart([f"w{w.index}".encode(), client, payload])

    # ----------------------------------------------------------------------------------------- loop

    def serve_forever(self, poll_ms: int = 100) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        self._running = True
        log.info("serving on %s with %d worker(s): %s", self.address, len(self.workers),
                 ", ".join(w.device for w in self.workers))
        while self._running:
            events = dict(poller.poll(poll_ms))
            if self.backend in events:
                self._on_backend()
            if self.front in events:
                self._on_front()
            self._check_workers()
        self.close()

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
