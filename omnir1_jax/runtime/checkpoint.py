"""Orbax checkpoints of a training run: params, optimizer state, step, data-iterator state, PRNG key.

Saves are atomic (Orbax writes a temporary directory ``<step>.orbax-checkpoint-tmp-*`` and renames it to
``<step>`` only when every item is written; on object stores it writes a commit file instead), so a run killed
in the middle of a save — even with SIGKILL — restarts from the last complete checkpoint; incomplete temporary
directories are never listed as steps and are deleted on the next start. The state and the JSON metadata (step,
data-iterator state, config) are items of one Orbax checkpoint, so they commit together.

Multi-process runs: every process calls ``save`` / ``restore`` with its (globally sharded) arrays; Orbax writes
each process's shards and lets the primary process write the metadata and rename the directory.

Test hook: with ``OMNIR1_TEST_CHECKPOINT_DELAY_S=<seconds>`` in the environment, a save sleeps that long after
writing its metadata and before Orbax commits the step (prints ``[checkpoint] test delay``), so a test can
SIGKILL the process in the middle of a save deterministically; ``OMNIR1_TEST_CHECKPOINT_DELAY_STEP=<step>`` limits
the delay to that step's save.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _encode_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, (bytes, bytearray)):
            out[k] = {"__bytes__": base64.b64encode(bytes(v)).decode()}
        else:
            out[k] = v
    return out


def _decode_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict) and set(v) == {"__bytes__"}:
            out[k] = base64.b64decode(v["__bytes__"])
        else:
            out[k] = v
    return out


DELAY_ENV = "OMNIR1_TEST_CHECKPOINT_DELAY_S"
DELAY_STEP_ENV = "OMNIR1_TEST_CHECKPOINT_DELAY_STEP"


class _MetaHandler(ocp.JsonCheckpointHandler):
    """Orbax's JSON item handler plus the test delay hook (see the module docstring)."""

    saving_step: int | None = None

    async def _save_fn(self, x, directory):
        await super()._save_fn(x, directory)
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        only = os.environ.get(DELAY_STEP_ENV)
        if delay > 0 and (not only or int(only) == self.saving_step):
            print(f"[checkpoint] test delay {delay} s before commit ({directory})", flush=True)
            time.sleep(delay)


class RunCheckpointer:
    """Keeps the last ``keep`` checkpoints of a run under ``<out_dir>/checkpoints``.

    ``save(step, state, meta)``: ``state`` is a pytree of arrays (params, optimizer state, PRNG key data);
    ``meta`` a JSON-able dict (data-iterator state as bytes is fine, the config, metrics).
    ``restore(template)`` returns ``(step, state, meta)`` of the newest complete checkpoint, or None.
    """

    def __init__(self, out_dir: str, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(out_dir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, cleanup_tmp_directories=True, create=True
        )
        registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
        state, meta = ocp.StandardCheckpointHandler(), _MetaHandler()
        self._meta_handler = meta
        registry.add("state", ocp.args.StandardSave, state)
        registry.add("state", ocp.args.StandardRestore, state)
        registry.add("meta", ocp.args.JsonSave, meta)
        registry.add("meta", ocp.args.JsonRestore, meta)
        self._mgr = ocp.CheckpointManager(self.directory, options=options, handler_registry=registry)

    def latest_step(self) -> int | None:
        self._mgr.reload()
        return self._mgr.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Write checkpoint ``step`` and wait until it is committed (the older ones beyond ``keep`` go)."""
        if jax.process_index() == 0:
            print(f"[checkpoint] saving step {step} to {self.directory}", flush=True)
        self._meta_handler.saving_step = int(step)
        self._mgr.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(_encode_meta(meta))),
            force=True,
        )
        self._mgr.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict[str, Any]] | None:
        """The newest complete checkpoint (or ``step``) restored into ``template``'s shapes, dtypes and
        shardings, as ``(step, state, meta)``; None when there is none."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self._mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return step, restored["state"], _decode_meta(dict(restored["meta"]))

    def close(self) -> None:
        self._mgr.close()


def key_to_data(key: jax.Array) -> np.ndarray:
    """A typed PRNG key as a plain uint32 array (checkpointable)."""
    return np.asarray(jax.random.key_data(key))


def key_from_data(data: Any) -> jax.Array:
    """Inverse of :func:`key_to_data`."""
    return jax.random.wrap_key_data(np.asarray(data, np.uint32))
