"""Orbax checkpoints of a training run: params, optimizer state, step, data-iterator state, PRNG key.

Saves are atomic (Orbax writes a temporary directory and renames it when complete), so a run killed in the
middle of a save — even with SIGKILL — restarts from the last complete checkpoint; incomplete temporary
directories are ignored and cleaned up on the next start.
"""

from __future__ import annotations

import base64
import os
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
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        self._mgr.reload()
        return self._mgr.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        self._mgr.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(_encode_meta(meta))),
            force=True,
        )
        self._mgr.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict[str, Any]] | None:
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
    return jax.random.wrap_key_data(np.asarray(data, np.uint32))
