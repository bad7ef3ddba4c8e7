"""The server command's contract with whoever starts it (``python -m sam2_bridge.serve``, docs/design.md §9.4):
the module to run, its exit statuses, and the shared-token file that both the command and the client read.

The client side (:class:`sam2_bridge.wire.pool.LocalServer`) starts the command and reads its exit status; the
server side (:mod:`sam2_bridge.server.cli`) returns it. Both import it from here, so the client never imports the
server side.
"""

from __future__ import annotations

from sam2_bridge.wire.codec import MAX_TOKEN_CHARS

SERVE_MODULE = "sam2_bridge.serve"  # python -m SERVE_MODULE ARGS starts a bridge server
EXIT_BAD_FLAGS = 2  # a bad flag, address, budget or token file (argparse's status for a bad command line)
EXIT_WORKER_START = 3  # a worker never started (missing config or weights): restarting the server would not help


def read_token_file(path: str) -> str:
    """The shared token in ``path`` (surrounding whitespace stripped); ValueError when empty or too long."""
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"--token-file {path}: the token must be 1 to {MAX_TOKEN_CHARS} characters, got {len(token)}")
    return token
