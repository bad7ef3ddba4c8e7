"""Bridge start-up for a run (docs/design.md §9.4): start a local bridge subprocess or connect to remote ones,
and resolve a ``KIND:@policy`` grounder (System 2 = the policy, docs/design.md §1.1) to the policy's directory."""

from __future__ import annotations

import atexit
import dataclasses
import os
from typing import Any

import jax

from omnir1_jax.config import BridgeSpec, ConfigError
from sam2_bridge.wire.client import BridgeClient
from sam2_bridge.wire.pool import LocalServer


class Bridge:
    """A bridge client, plus the local server process when this run started one."""

    def __init__(self, client: Any, server: Any | None):
        self.client, self.server = client, server

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()


POLICY = "@policy"


def uses_policy_grounder(spec: BridgeSpec) -> bool:
    """Whether ``spec.grounder`` names the System-1 policy itself (``KIND:@policy``)."""
    return spec.grounder.partition(":")[2] == POLICY


def resolve_grounder(spec: BridgeSpec, policy_dir: str | None) -> BridgeSpec:
    """``spec`` with ``KIND:@policy`` replaced by ``KIND:<policy_dir>``, the local Hugging Face directory of the
    policy that System 2 is to be (Omni-R1 section 4.1: the trained model serves as System 1 and System 2 in
    evaluation; a frozen copy of the pretrained model during training). ``spec`` itself for any other grounder,
    and with ``bridge.start = False``: a remote bridge serves the grounder it was started with (start it with
    ``--grounder qwen2_5_omni:DIR`` on the policy's directory).

    Raises:
      ConfigError: ``@policy`` with no directory to resolve it to.
    """
    if not uses_policy_grounder(spec) or not spec.start:
        return spec
    if not policy_dir:
        raise ConfigError(
            f"bridge.grounder={spec.grounder!r} (System 2 = the policy) needs the policy as a local "
            "Hugging Face directory: set model.checkpoint (or pass --policy DIR to "
            "omnir1_jax.evaluate)"
        )
    if not os.path.isdir(policy_dir):
        raise ConfigError(f"bridge.grounder={spec.grounder!r}: the policy directory {policy_dir} does not exist")
    kind = spec.grounder.partition(":")[0]
    return dataclasses.replace(spec, grounder=f"{kind}:{os.path.abspath(policy_dir)}")


def open_bridge(spec: BridgeSpec, run_dir: str, *, data_roots=(), wait_s: float = 300.0) -> Bridge:
    """Start a local bridge (``spec.start``) on an ipc socket in ``run_dir`` and connect, or connect to
    ``spec.addresses``. ``data_roots`` are the dataset roots the bridge may read frames from. Waits until the
    workers report ready. In a multi-process run every process starts its own local bridge
    (``bridge_p<i>.sock``). A local server that dies (even SIGKILL) is restarted by the client and the queries
    it held are re-sent (see :class:`sam2_bridge.wire.client.BridgeClient`). A ``KIND:@policy`` grounder must be
    resolved first (:func:`resolve_grounder`)."""
    if uses_policy_grounder(spec) and spec.start:
        raise ConfigError(
            f"bridge.grounder={spec.grounder!r} was not resolved to the policy's directory "
            "(omnir1_jax.runtime.bridge.resolve_grounder)"
        )
    server = None
    addresses = list(spec.addresses)
    if spec.start:
        os.makedirs(run_dir, exist_ok=True)
        # one bridge per process: processes of a multi-host run may share a run directory (and a machine)
        name = "bridge.sock" if jax.process_count() == 1 else f"bridge_p{jax.process_index()}.sock"
        sock = os.path.join(os.path.abspath(run_dir), name)
        args = [
            "--address",
            f"ipc://{sock}",
            "--workers",
            str(spec.workers),
            "--grounder",
            spec.grounder,
            "--segmenter",
            spec.segmenter,
        ]
        if spec.token_file:
            args += ["--token-file", spec.token_file]
        for plugin in spec.grounder_plugins:  # imported in every worker before the grounder is built
            args += ["--grounder-plugin", plugin]
        for root in data_roots:
            args += ["--data-root", os.path.abspath(root)]
        if spec.segmenter == "sam2":
            args += ["--sam2-config", spec.sam2_config]
            if spec.sam2_checkpoint:
                args += ["--sam2-checkpoint", spec.sam2_checkpoint]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
        server = LocalServer(args, env=env, log_path=sock[: -len(".sock")] + ".log").start()
        atexit.register(server.stop)  # never leave an orphaned bridge behind when the trainer exits
        addresses = [f"ipc://{sock}"]
    if not addresses:
        raise ConfigError("bridge.start is False and bridge.addresses is empty")
    client = BridgeClient(
        addresses,
        deadline_s=spec.timeout_s,
        retries=spec.retries,
        local_server=server,
        token_file=spec.token_file,
        attempt_timeout_s=spec.attempt_timeout_s or None,
    )
    try:
        client.wait_ready(timeout_s=wait_s, workers=spec.workers if spec.start else 1)
    except Exception:
        client.close()
        if server is not None:
            server.stop()
        raise
    return Bridge(client, server)
