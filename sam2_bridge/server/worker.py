"""A worker process: loads the models on one device and answers requests forwarded by the broker.

Started by :mod:`sam2_bridge.server.broker` as ``python -m sam2_bridge.server.worker --backend ADDR --index I
--config JSON`` (a subprocess, no pickling). It connects a DEALER socket (identity ``w<I>``) to the server's
backend ROUTER, announces ``[b"READY", info-json]`` once the models are loaded (or ``[b"FAILED", error-json]`` and
exits 3 when they cannot be: the server counts failed starts), then loops: receive ``[client, request bytes, deadline]``
(``deadline``: the request's ``time.monotonic()`` deadline as ASCII, empty for none; the broker and the worker
share the machine's monotonic clock), reply ``[client, reply bytes, stats-json]``. Work whose deadline has
passed is answered ``expired`` without starting it.

Test hook (fault-injection tests and ``benchmarks/chaos.py``; never set in production): with
``SAM2_BRIDGE_TEST_REPLY_DELAY_S=<seconds>`` in the environment, a worker sleeps that long after computing a reply
and before sending it (prints ``[bridge] test delay`` on stderr), so a test can kill the worker or the server in
the middle of a reply deterministically, or play a slow bridge. With ``SAM2_BRIDGE_TEST_REPLY_HOLD_FILE=<path>``
as well, only a reply computed while that file exists is delayed, one per creation of the file: the worker that
takes it removes the file and writes ``<pid> <request id>`` to ``<path>.held`` (atomically) before sleeping.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from sam2_bridge.server.handler import Handler, HandlerConfig
from sam2_bridge.wire import protocol
from sam2_bridge.wire.command import EXIT_WORKER_START

REPLY_DELAY_ENV = "SAM2_BRIDGE_TEST_REPLY_DELAY_S"
REPLY_HOLD_ENV = "SAM2_BRIDGE_TEST_REPLY_HOLD_FILE"


def maybe_delay_reply(req_id: str) -> float:
    """The test hook (see the module docstring): sleep before sending the reply to ``req_id`` when the
    environment asks for it; returns the seconds slept (0 without the hook)."""
    delay = float(os.environ.get(REPLY_DELAY_ENV, "0") or 0)
    if delay <= 0:
        return 0.0
    hold = os.environ.get(REPLY_HOLD_ENV)
    if hold:
        try:
            os.unlink(hold)  # armed: this worker takes the one held reply
        except FileNotFoundError:
            return 0.0
        tmp = f"{hold}.held.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()} {req_id}\n")
        os.replace(tmp, f"{hold}.held")
    print(
        f"[bridge] test delay: reply to {req_id} held {delay} s (worker pid {os.getpid()})", file=sys.stderr, flush=True
    )
    time.sleep(delay)
    return delay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", required=True, help="the server's internal ipc:// address")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--config", required=True, help="HandlerConfig fields as JSON")
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument("--max-message-bytes", type=int, default=0)
    parser.add_argument("--limits", default="", help="DecodeLimits fields as JSON")
    args = parser.parse_args(argv)

    import zmq

    parent = os.getppid()
    cfg = HandlerConfig(**json.loads(args.config))
    limits = (
        protocol.DecodeLimits(**json.loads(args.limits))
        if args.limits
        else protocol.DecodeLimits(max_message_bytes=args.max_message_bytes or protocol.DEFAULT_MAX_MESSAGE_BYTES)
    )
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, f"w{args.index}".encode())
    sock.setsockopt(zmq.LINGER, 2000)  # a FAILED notice must reach the server before this process exits
    sock.connect(args.backend)
    try:
        if args.torch_threads > 0 and (cfg.segmenter == "sam2" or cfg.grounder != "synthetic" or cfg.judge):
            import torch

            torch.set_num_threads(args.torch_threads)
        handler = Handler(cfg)
    except Exception as exc:  # the models cannot be built: tell the server why, then exit
        traceback.print_exc(file=sys.stderr)
        first_line = (str(exc).strip().splitlines() or [""])[0]  # the traceback above has the rest
        sock.send_multipart([b"FAILED", json.dumps({"error": f"{type(exc).__name__}: {first_line}"[:2000]}).encode()])
        sock.close()
        ctx.term()
        return EXIT_WORKER_START
    sock.setsockopt(zmq.LINGER, 0)
    sock.send_multipart([b"READY", json.dumps({"pid": os.getpid(), "device": cfg.device}).encode()])
    while True:
        if not sock.poll(1000):
            if os.getppid() != parent:  # the server died: do not linger as an orphan
                break
            continue
        frames = sock.recv_multipart()
        if frames[0] == b"STOP":
            break
        client, payload = frames[0], frames[1]
        deadline = float(frames[2]) if len(frames) > 2 and frames[2] else None
        t0 = time.perf_counter()
        req_id, req_type, status, version = "?", "?", "ok", protocol.PROTOCOL_VERSION
        try:
            env = protocol.read_envelope(payload, limits)
            version = env.version
            req_id, req_type = protocol.check_envelope(env)
            if deadline is not None and time.monotonic() > deadline:
                raise protocol.ProtocolError("expired", "the request's deadline passed while it waited; dropped")
            body = protocol.decode_body(env, limits)
            protocol.check_request_version(body, version)
            body = handler.handle(req_type, body, deadline)
            reply = protocol.make_reply(
                req_id,
                req_type,
                body,
                max_message_bytes=min(limits.max_message_bytes, handler.budget.max_reply_bytes),
                version=version,
            )
        except protocol.ProtocolError as exc:
            status = exc.code
            reply = protocol.make_error(req_id, req_type, exc.code, exc.message, exc.retryable, version=version)
        except MemoryError:  # an allocation the budget did not foresee: a clear code, the worker lives on
            status = "too_large"
            reply = protocol.make_error(
                req_id, req_type, "too_large", "out of memory for this request", version=version
            )
        except Exception as exc:  # a bug or a model failure: report it, keep serving
            status = "internal"
            traceback.print_exc(file=sys.stderr)
            reply = protocol.make_error(req_id, req_type, "internal", f"{type(exc).__name__}: {exc}", version=version)
        stats = {"compute_s": time.perf_counter() - t0, "status": status}
        maybe_delay_reply(req_id)
        sock.send_multipart([client, reply, json.dumps(stats).encode()])
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
