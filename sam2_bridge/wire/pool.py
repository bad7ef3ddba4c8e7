"""The servers a :class:`~sam2_bridge.wire.client.BridgeClient` talks to (pure python; imports neither torch, jax
nor the server side).

- :class:`LocalServer`: a bridge server started (and restarted) by this process, ``python -m sam2_bridge.serve``.
- :class:`BridgePool`: the health of several bridges (a remote pool over ``tcp://``). The client sends each
  attempt to the next live address, round-robin, preferring bridges it is connected to. A bridge is DROPPED
  (for the client's lifetime, with a warning naming it and why) when it answers with a wrong token
  (``unauthorized``: it was started with another ``--token-file``), speaks another protocol version (a reply it
  cannot decode for its version, or ``bad_version``), or lets an attempt pass ``attempt_timeout_s`` without an
  answer (slow); whatever it held is re-sent to the others at once, and its later replies are discarded. A
  bridge whose connection drops (killed, restarted) is not dropped: its requests are re-sent to the others and
  it is used again once it is back. A single address, and a local server, are never dropped (there is nothing
  to fail over to; a local server is restarted). When every bridge of a pool is dropped, requests fail with
  the error ``no_bridge`` naming each bridge and its reason.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence

from sam2_bridge.wire.command import EXIT_WORKER_START, SERVE_MODULE

log = logging.getLogger("sam2_bridge.wire.client")


def _die_with_parent() -> None:
    """In the forked child: ask Linux for SIGTERM when the parent (thread) dies (prctl PR_SET_PDEATHSIG)."""
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

    def start(self) -> LocalServer:
        """Start the server process. On Linux it gets SIGTERM when the thread that started it ends (the
        trainer's main thread, or the client's I/O thread after a restart), so a trainer killed with SIGKILL
        leaves no orphaned bridge behind."""
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", SERVE_MODULE, *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        if out is not None:
            out.close()  # the child holds its own descriptor
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failed(self) -> bool:
        """The server exited because a worker could not start (restarting it would fail the same way)."""
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


class BridgePool:
    """Which of ``addresses`` are live, connected or dropped (see the module docstring), and counters.

    ``stats`` counts ``sent`` (attempts), ``resent`` (attempts after the first), ``dropped`` (bridges),
    ``late_replies`` (a reply to a request already answered or given up: discarded) and
    ``discarded_from_dropped`` (replies from a dropped bridge: discarded, never used).
    """

    def __init__(self, addresses: Sequence[str], protected: Iterable[str] = ()):
        self.addresses = list(dict.fromkeys(addresses))
        self.protected = set(protected)
        self.dropped: dict[str, str] = {}
        self.connected = dict.fromkeys(self.addresses, False)
        self.stats: collections.Counter = collections.Counter(
            dict.fromkeys(("sent", "resent", "dropped", "late_replies", "discarded_from_dropped"), 0)
        )
        self._next = 0

    @property
    def is_pool(self) -> bool:
        """More than one address: bridges can be dropped and their work moved to the others."""
        return len(self.addresses) > 1

    def live(self) -> list[str]:
        return [a for a in self.addresses if a not in self.dropped]

    def pick(self, avoid: str | None = None) -> str | None:
        """The next live address, round-robin: a connected one other than ``avoid`` if there is one, else any
        connected one, else any live one but ``avoid``, else any live one; None when every bridge is dropped."""
        n = len(self.addresses)
        order = [self.addresses[(self._next + i) % n] for i in range(n)]
        live = [a for a in order if a not in self.dropped]
        for keep in (
            lambda a: self.connected[a] and a != avoid,
            lambda a: self.connected[a],
            lambda a: a != avoid,
            lambda a: True,
        ):
            for a in live:
                if keep(a):
                    self._next = (self.addresses.index(a) + 1) % n
                    return a
        return None

    def can_drop(self, address: str) -> bool:
        return self.is_pool and address not in self.protected and address not in self.dropped

    def drop(self, address: str, reason: str) -> None:
        """Take ``address`` out of the pool for good, with a warning (the caller re-sends what it held)."""
        self.dropped[address] = reason
        self.stats["dropped"] += 1
        live = self.live()
        log.warning(
            "bridge %s dropped from the pool: %s; %d of %d bridge(s) left%s",
            address,
            reason,
            len(live),
            len(self.addresses),
            f" ({', '.join(live)})" if live else " - requests now fail (no_bridge)",
        )

    def describe_dropped(self) -> str:
        return "; ".join(f"{a} ({why})" for a, why in self.dropped.items())
