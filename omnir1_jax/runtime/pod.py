"""A multi-process run that fails loudly: a lost process is named within seconds, not a hang in a collective,
and processes that differ in their config or code refuse to start together.

Both go through the key-value store of JAX's coordination service (the one ``jax.distributed.initialize``
starts in process 0), which :func:`omnir1_jax.runtime.distributed.initialize` sets up for every multi-process run:

**Same run** (:func:`check_same_run`, before any work): every process publishes its :func:`fingerprint` (the
experiment config as JSON, a hash of every source file of ``omnir1_jax`` and ``sam2_bridge``, the versions of
this package, Python, JAX, Flax and Orbax) and compares it with every other process's. A difference raises
:class:`~omnir1_jax.config.ConfigError` naming it (``process 1 differs from process 0: config grpo.beta = 0.001
here, 0.04 there``), which the entry points print as one line with exit status 2. Every process sees the same
differences, so all of them stop.

**Lost process** (:class:`PodWatch`, for the rest of the run): a thread in every process increments its own
heartbeat key every ``timeout / 20`` seconds (at most 1 s) and reads all the others' with one request. A process
whose heartbeat has not changed for ``timeout`` seconds (``OMNIR1_POD_TIMEOUT_S``, default 20), or a coordination
service that has not answered for that long (process 0, which hosts it, is gone), is lost: this process prints
one line on stderr,

    python -m omnir1_jax.train: error: process 1 of 2 is lost (no heartbeat for 20 s); process 0 stops. ...

and exits at once with status :data:`EXIT_LOST_PROCESS` (``os._exit``: a collective, an Orbax barrier or JAX's
shutdown barrier waiting for the lost process would otherwise hang until JAX's own heartbeat timeout, 100 s, and
then abort with a long log). A main thread that fails first (a collective whose peer vanished raises at once)
waits in :func:`guard` up to ``timeout`` for that verdict instead of printing a traceback. A lost process 0
is usually noticed first by JAX's own distributed client, within a second, which logs a fatal error and
aborts; :func:`name_a_lost_coordinator` then prints the same kind of line (after JAX's log) and exits 4. A
process that finishes normally marks itself done, so its peers do not take its exit for a loss. Restart every
process with the same command: the run resumes from its last checkpoint.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
from jax._src import distributed as jax_distributed

from omnir1_jax import __version__
from omnir1_jax.config import ConfigError, to_dict

EXIT_LOST_PROCESS = 4
TIMEOUT_ENV = "OMNIR1_POD_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 20.0
_PREFIX = "omnir1/pod"
_PACKAGES = ("omnir1_jax", "sam2_bridge")


# ---------------------------------------------------------------------------------------------- same run
def code_hashes(root: str | None = None) -> dict[str, str]:
    """``{path: sha256 prefix}`` of every ``.py`` file of this package and of ``sam2_bridge`` (paths relative
    to the directory that holds them)."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = {}
    for pkg in _PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()[:16]
    return out


def fingerprint(cfg: Any) -> dict[str, Any]:
    """What every process of one run must share: the config, the code, the versions (see the module doc)."""
    import flax
    import orbax.checkpoint

    return {
        "config": to_dict(cfg),
        "code": code_hashes(),
        "versions": {
            "omnir1_jax": __version__,
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "orbax": orbax.checkpoint.__version__,
        },
    }


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one phrase each (config fields, code files, versions)."""
    out = []
    a, b = _flat(mine.get("config", {})), _flat(theirs.get("config", {}))
    out += [
        f"config {k} = {a.get(k, '(absent)')!r} here, {b.get(k, '(absent)')!r} there"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    a, b = mine.get("versions", {}), theirs.get("versions", {})
    out += [f"{k} version {a.get(k)} here, {b.get(k)} there" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    a, b = mine.get("code", {}), theirs.get("code", {})
    out += [
        f"code file {k} " + ("differs" if k in a and k in b else "only here" if k in a else "only there")
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    return out


def check_same_run(client: Any, index: int, count: int, mine: dict[str, Any], timeout_s: float = 300.0) -> None:
    """Publish ``mine`` and compare it with every other process's fingerprint; ConfigError naming the first
    differences (see the module docstring)."""
    client.key_value_set(
        f"{_PREFIX}/fingerprint/{index}", json.dumps(mine, sort_keys=True, default=str), allow_overwrite=True
    )
    for other in range(count):
        if other == index:
            continue
        theirs = json.loads(client.blocking_key_value_get(f"{_PREFIX}/fingerprint/{other}", int(timeout_s * 1000)))
        diff = differences(mine, theirs)
        if diff:
            more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
            raise ConfigError(
                f"process {index} differs from process {other}: {'; '.join(diff[:3])}{more}; start "
                "every process of a run with the same config and the same code"
            )


# -------------------------------------------------------------------------------------------- lost process
def timeout_from_env() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} must be > 0")
    return value


class PodWatch:
    """Heartbeats over the coordination service's key-value store (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        index: int,
        count: int,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        prog: str | None = None,
        exit_fn: Callable[[int], None] = os._exit,
    ):
        self.client, self.index, self.count, self.timeout_s = client, index, count, float(timeout_s)
        self.prog, self.exit_fn = prog or _prog(), exit_fn
        self.interval = max(0.05, min(1.0, self.timeout_s / 20))
        self.lost: str | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._beat, name="omnir1-pod-beat", daemon=True),
            threading.Thread(target=self._watch, name="omnir1-pod-watch", daemon=True),
        ]

    def start(self) -> PodWatch:
        for t in self._threads:
            t.start()
        return self

    def stop(self, done: bool = True) -> None:
        """Stop the threads; ``done``: this process ended normally, so its peers stop watching it (else its
        silence makes them call it lost, which is what a crashed process is)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if done:
            with contextlib.suppress(Exception):
                self.client.key_value_set(f"{_PREFIX}/done/{self.index}", "1", allow_overwrite=True)

    def _at_exit(self) -> None:
        self.stop(done=not hasattr(sys, "last_value"))  # the interpreter sets it for an uncaught exception

    def _beat(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            with contextlib.suppress(Exception):  # a dead service is the watcher's finding, not the beater's
                self.client.key_value_set(f"{_PREFIX}/beat/{self.index}", str(n), allow_overwrite=True)
            self._stop.wait(self.interval)

    def _read(self, folder: str) -> dict[int, str]:
        """``{process: value}`` of the keys under ``omnir1/pod/<folder>/`` (one request for every process)."""
        return {int(k.rpartition("/")[2]): v for k, v in self.client.key_value_dir_get(f"{_PREFIX}/{folder}/")}

    def _watch(self) -> None:
        start = time.monotonic()
        seen: dict[int, tuple[str | None, float]] = {p: (None, start) for p in range(self.count) if p != self.index}
        answered = start
        while not self._stop.wait(self.interval):
            if _shut_down():  # jax.distributed.shutdown() ran: the run is over, nothing to watch
                self._stop.set()
                return
            now = time.monotonic()
            try:
                done, beats = self._read("done"), self._read("beat")
                answered = now
            except Exception as e:
                if now - answered > self.timeout_s:
                    text = str(e).strip()
                    self._lost(
                        0,
                        f"the coordination service it hosts has not answered for {now - answered:.0f} "
                        f"s: {text.splitlines()[0][:120] if text else type(e).__name__}",
                    )
                    return
                continue
            for peer in list(seen):
                if peer in done:
                    del seen[peer]  # finished normally
                elif beats.get(peer) != seen[peer][0]:
                    seen[peer] = (beats.get(peer), now)
            for peer, (_, last) in seen.items():
                if now - last > self.timeout_s:
                    self._lost(peer, f"no heartbeat for {now - last:.0f} s")
                    return

    def _lost(self, peer: int, why: str) -> None:
        if self._stop.is_set():
            return
        self.lost = f"process {peer} of {self.count} is lost ({why})"
        print(
            f"{self.prog}: error: {self.lost}; process {self.index} stops. Restart every process with the same "
            "command: the run resumes from its last checkpoint",
            file=sys.stderr,
            flush=True,
        )
        self.exit_fn(EXIT_LOST_PROCESS)


def _prog() -> str:
    """``python -m MODULE`` of the running entry point (the name its errors start with), else the script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name != "__main__":
        return f"python -m {spec.name}"
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


_WATCH: PodWatch | None = None


def _refuses(address: str) -> bool:
    """Whether nothing answers at ``host:port`` any more (connection refused or no route within 2 s)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2.0).close()
        return False
    except OSError:
        return True


def name_a_lost_coordinator(index: int, count: int, coordinator: str | None) -> None:
    """In a process other than 0: when JAX's distributed client aborts this process because the coordination
    service stopped answering (process 0, which hosts it, is gone: the client notices within a second, before
    :class:`PodWatch` can), print the one line naming process 0 and exit :data:`EXIT_LOST_PROCESS`. JAX's
    client logs its own fatal error first; its callback for that cannot be set from Python, so this is a
    ``SIGABRT`` handler, and it speaks only when the coordinator's address indeed refuses connections (any
    other abort keeps its default)."""
    if index == 0 or not coordinator:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype, libc.signal.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p]

    def on_abort(_signum: int) -> None:
        if _refuses(coordinator):
            print(
                f"{_prog()}: error: process 0 of {count} is lost (the coordination service it hosts at "
                f"{coordinator} is gone); process {index} stops. Restart every process with the same command: "
                "the run resumes from its last checkpoint",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_LOST_PROCESS)
        libc.signal(signal.SIGABRT, None)  # SIG_DFL: not a lost coordinator, abort as it would have
        os.abort()

    global _ABORT_HANDLER
    _ABORT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)(on_abort)  # kept alive for the process's lifetime
    libc.signal(signal.SIGABRT, ctypes.cast(_ABORT_HANDLER, ctypes.c_void_p))


_ABORT_HANDLER: Any = None


def _shut_down() -> bool:
    return jax_distributed.global_state.client is None


def start_watch(client: Any, index: int, count: int, timeout_s: float | None = None) -> PodWatch:
    """Start this process's :class:`PodWatch` (one per process). It is stopped by :func:`guard` at a normal end,
    at interpreter exit (before JAX's own shutdown), or when ``jax.distributed.shutdown()`` has run."""
    global _WATCH
    _WATCH = PodWatch(client, index, count, timeout_from_env() if timeout_s is None else timeout_s).start()
    atexit.register(_WATCH._at_exit)  # registered after JAX's shutdown hook, so it runs before it
    return _WATCH


@contextlib.contextmanager
def guard():
    """Around a multi-process run's work: a failure (other than a config error or an interrupt) waits up to the
    timeout for the watch's verdict on the peers (a lost one: one line and exit :data:`EXIT_LOST_PROCESS`, no
    traceback) before it propagates; a normal end marks this process done."""
    try:
        yield
    except Exception as error:
        watch = _WATCH
        if watch is not None and not watch._stop.is_set() and not isinstance(error, ConfigError):
            deadline = time.monotonic() + watch.timeout_s + 5 * watch.interval + 1.0
            while watch.lost is None and time.monotonic() < deadline:
                time.sleep(watch.interval)  # the watch thread exits the process if a peer is lost
            watch.stop(done=False)
        raise
    else:
        if _WATCH is not None:
            _WATCH.stop()
