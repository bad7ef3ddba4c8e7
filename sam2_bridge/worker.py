"""A worker process: loads the models on one device and answers requests forwarded by the server.

Started by :mod:`sam2_bridge.server` as ``python -m sam2_bridge.worker --backend ADDR --index I --config JSON``
(a subprocess, no pickling). It connects a DEALER socket (identity ``w<I>``) to the server's backend ROUTER,
announces ``[b"READY", info-json]`` once the models are loaded, then loops: receive
``[client, request bytes]``, reply ``[client, reply bytes, stats-json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", required=True, help="the server's internal ipc:// address")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--config", required=True, help="HandlerConfig fields as JSON")
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument("--max-message-bytes", type=int, default=0)
    args = parser.parse_args(argv)

    import zmq

    from sam2_bridge import protocol as P
    from sam2_bridge.handler import Handler, HandlerConfig

    parent = os.getppid()
    cfg = HandlerConfig(**json.loads(args.config))
    if args.torch_threads > 0 and (cfg.segmenter == "sam2" or cfg.grounder != "synthetic" or cfg.judge):
        import torch

        torch.set_num_threads(args.torch_threads)
    limit = args.max_message_bytes or P.DEFAULT_MAX_MESSAGE_BYTES
    handler = Handler(cfg)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, f"w{args.index}".encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.backend)
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
        t0 = time.perf_counter()
        req_id, req_type, status = "?", "?", "ok"
        try:
            message = P.decode_message(payload, limit)
            req_id, req_type = P.peek_envelope(message)
            body = handler.handle(req_type, message.get("body", {}))
            reply = P.make_reply(req_id, req_type, body, max_message_bytes=limit)
        except P.ProtocolError as exc:
            status = exc.code
            reply = P.make_error(req_id, req_type, exc.code, exc.message, exc.retryable)
        except Exception as exc:  # a bug or a model failure: report it, keep serving
            status = "internal"
            traceback.print_exc(file=sys.stderr)
            reply = P.make_error(req_id, req_type, "internal", f"{type(exc).__name__}: {exc}")
        stats = {"compute_s": time.perf_counter() - t0, "status": status}
        sock.send_multipart([client, reply, json.dumps(stats).encode()])
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
