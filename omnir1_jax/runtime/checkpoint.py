"""Orbax checkpoints of a training run: params, optimizer state, step, data-iterator state, PRNG key.

Saves are atomic (Orbax writes a temporary directory ``<step>.orbax-checkpoint-tmp-*`` and renames it to
``<step>`` only when every item is written; on object stores it writes a commit file instead), so a run killed
in the middle of a save — even with SIGKILL — restarts from the last complete checkpoint; incomplete temporary
directories are never listed as steps and are deleted on the next start. The state and the JSON metadata (step,
data-iterator state, config) are items of one Orbax checkpoint, so they commit together.

Multi-process runs: every process calls ``save`` / ``restore`` with its (globally sharded) arrays; Orbax writes
each process's shards and lets the primary process write the metadata and rename the directory. A template leaf
on one local device (the optimiser's step count) is restored replicated over the mesh of the global leaves.

Corrupt checkpoints: ``restore()`` tries the steps newest first. A step that fails to restore although its stored
tree has the template's structure (truncated or zero-filled array files, unreadable metadata, a missing item, an
empty directory with a step's name) is moved aside to ``checkpoints/corrupt/<step>-<reason>`` (never deleted),
the skip is printed (step, error, new place), and the next older step is tried. A step whose stored tree does not
have the
template's structure is a different model or config, not corruption: :class:`CheckpointError`, nothing moved.

Failed writes (a full disk, a file-size limit): a save that raises leaves nothing behind (its temporary
directory, or a step directory it had already renamed, is removed), so the previous checkpoint stays the newest
one; the step, the reason (``File too large (EFBIG)``, ``No space left on device (ENOSPC)``, ...) and the step that
is intact are printed. ``on_error="stop"`` (``run.on_checkpoint_error``, the default) then raises
:class:`CheckpointWriteError` with that line (the entry points print it and exit 2); ``"continue"`` makes ``save``
return False and the run goes on, trying again at its next checkpoint step.

Test hook: with ``OMNIR1_TEST_CHECKPOINT_DELAY_S=<seconds>`` in the environment, a save sleeps that long after
writing its metadata and before Orbax commits the step (prints ``[checkpoint] test delay``), so a test can
SIGKILL the process in the middle of a save deterministically; ``OMNIR1_TEST_CHECKPOINT_DELAY_STEP=<step>`` limits
the delay to that step's save.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import time
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec


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


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (message names the directory, the step and why)."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written and ``on_error="stop"`` (message: the step, why, the intact step)."""


def _leaf_shapes(tree: Any) -> dict[tuple[str, ...], tuple[int, ...] | None]:
    """``{key path: shape}`` of a pytree's leaves (shape None where a leaf has none). Key kinds are dropped: an nnx
    Variable's ``.value`` (GetAttrKey) is stored by Orbax as a dict key."""

    def name(k):
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                return str(getattr(k, attr))
        return str(k)

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        tuple(name(k) for k in path): (tuple(leaf.shape) if hasattr(leaf, "shape") else None) for path, leaf in leaves
    }


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

    def __init__(self, out_dir: str, keep: int = 3, on_error: str = "stop"):
        if on_error not in ("stop", "continue"):
            raise ValueError(f"on_error must be 'stop' or 'continue', got {on_error!r}")
        self.on_error = on_error
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

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
        """Write checkpoint ``step`` and wait until it is committed (the older ones beyond ``keep`` go); True.

        A write that fails is removed and reported (see the module docstring): :class:`CheckpointWriteError`
        with ``on_error="stop"``, False with ``"continue"``."""
        if jax.process_index() == 0:
            print(f"[checkpoint] saving step {step} to {self.directory}", flush=True)
        self._meta_handler.saving_step = int(step)
        existed = os.path.isdir(os.path.join(self.directory, str(int(step))))
        try:
            with _quiet_orbax_thread_errors():
                self._mgr.save(
                    int(step),
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(_encode_meta(meta))
                    ),
                    force=True,
                )
                self._mgr.wait_until_finished()
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:
            return self._save_failed(int(step), e, existed)
        return True

    def _save_failed(self, step: int, error: Exception, existed: bool) -> bool:
        """Remove what the failed save of ``step`` wrote, report it, then stop or go on (``on_error``)."""
        for name in os.listdir(self.directory):
            partial = name.startswith(f"{step}.orbax-checkpoint-tmp") or (name == str(step) and not existed)
            if partial and jax.process_index() == 0:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        self._mgr.reload()
        newest = self._mgr.latest_step()
        intact = (
            f"the newest checkpoint, step {newest}, is intact"
            if newest is not None
            else "there is no earlier checkpoint"
        )
        msg = f"[checkpoint] step {step} was NOT saved: {write_error_reason(error)}; {intact} ({self.directory})"
        if self.on_error == "continue":
            print(
                f"{msg}; training goes on (run.on_checkpoint_error='continue'), the next checkpoint step is "
                "saved as usual",
                flush=True,
            )
            return False
        raise CheckpointWriteError(
            f"{msg}; stopping (run.on_checkpoint_error='stop'; 'continue' trains on without this checkpoint)"
        ) from error

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict[str, Any]] | None:
        """The newest checkpoint that restores (or exactly ``step``) into ``template``'s shapes, dtypes and
        shardings, as ``(step, state, meta)``; None when there is none.

        Without ``step``, a corrupt checkpoint is moved aside (see the module docstring) and the next older one
        is tried. Raises :class:`CheckpointError` when ``step`` does not restore or a checkpoint holds a tree
        of another structure than ``template``.
        """
        abstract = _on_the_mesh(jax.tree.map(ocp.utils.to_shape_dtype_struct, template))
        if step is not None:
            try:
                return self._restore_step(step, abstract)
            except Exception as e:
                raise CheckpointError(
                    f"checkpoint step {step} in {self.directory} does not restore: {type(e).__name__}: {_first_line(e)}"
                ) from e
        self._mgr.reload()
        for candidate in sorted(self._mgr.all_steps(), reverse=True):
            try:
                return self._restore_step(candidate, abstract)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as e:
                self._check_structure(candidate, template, e)
                self._set_aside(candidate, e)
        self._mgr.reload()
        return None

    def _restore_step(self, step: int, abstract: Any) -> tuple[int, Any, dict[str, Any]]:
        restored = self._mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        meta = restored["meta"]
        if not isinstance(meta, dict):
            raise ValueError(f"meta item is {type(meta).__name__}, not a JSON object")
        return step, restored["state"], _decode_meta(dict(meta))

    def _check_structure(self, step: int, template: Any, error: Exception) -> None:
        """Raise CheckpointError when ``step``'s stored tree is readable and differs from ``template``'s in its
        leaves or their shapes: another model or config, not a corrupt file."""
        try:
            stored = self._mgr.item_metadata(step)["state"]
            stored_shapes = _leaf_shapes(getattr(stored, "tree", stored))
        except Exception:
            return
        if stored is None or not stored_shapes:
            return
        wanted = _leaf_shapes(template)
        differ = sorted(set(stored_shapes) ^ set(wanted))
        differ += sorted(
            k
            for k in set(stored_shapes) & set(wanted)
            if None not in (stored_shapes[k], wanted[k]) and stored_shapes[k] != wanted[k]
        )
        if differ:
            shown = [
                f"{'/'.join(k)}: stored {stored_shapes.get(k, 'absent')}, expected {wanted.get(k, 'absent')}"
                for k in differ[:3]
            ]
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} holds another model or config than this run "
                f"({'; '.join(shown)}); nothing was moved"
            ) from error

    def _set_aside(self, step: int, error: Exception) -> None:
        reason = re.sub(r"[^A-Za-z0-9_.-]+", "_", type(error).__name__)[:40]
        src = os.path.join(self.directory, str(step))
        corrupt = os.path.join(self.directory, "corrupt")
        dst = os.path.join(corrupt, f"{step}-{reason}")
        if jax.process_index() == 0 and os.path.exists(src):
            os.makedirs(corrupt, exist_ok=True)
            n = 1
            while os.path.exists(dst):
                dst, n = os.path.join(corrupt, f"{step}-{reason}-{n}"), n + 1
            os.rename(src, dst)
        msg = (
            f"[checkpoint] skipped step {step}: it does not restore ({type(error).__name__}: "
            f"{_first_line(error)}); moved to {dst}; trying an older step"
        )
        print(msg, flush=True)
        self._mgr.reload()

    def close(self) -> None:
        self._mgr.close()


def _on_the_mesh(abstract: Any) -> Any:
    """In a multi-process run, a leaf of the template that lives on one local device (an uncommitted scalar such
    as the optimiser's step count) is restored replicated over the mesh of the global leaves: restored on one
    device it would be committed there, and a jit program over the mesh refuses it next to global arrays."""
    if jax.process_count() == 1:
        return abstract
    leaves = jax.tree.leaves(abstract)
    mesh = next((x.sharding.mesh for x in leaves if isinstance(getattr(x, "sharding", None), NamedSharding)), None)
    if mesh is None:
        return abstract

    def place(x):
        sharding = getattr(x, "sharding", None)
        if sharding is None or isinstance(sharding, NamedSharding):
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, PartitionSpec()))

    return jax.tree.map(place, abstract)


def write_error_reason(error: BaseException) -> str:
    """Why a write failed, in a few words: the OS error (``File too large (EFBIG)``) when the error carries one
    (an OSError, or tensorstore's ``[os_error_code='27']`` inside Orbax's error), then the error's first line."""
    code = getattr(error, "errno", None)
    if not isinstance(code, int):
        found = re.search(r"os_error_code='?(\d+)", str(error))
        code = int(found.group(1)) if found else None
    head = f"{os.strerror(code)} ({errno.errorcode.get(code, code)}): " if code else ""
    return f"{head}{type(error).__name__}: {_first_line(error)}"


def _not_a_thread_error(record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and "raised an exception" in record.getMessage())


def _not_an_orphaned_write(record: logging.LogRecord) -> bool:
    return "exception was never retrieved" not in record.getMessage()


def _quiet_unraisable(previous):
    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if not (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"):
            previous(unraisable)

    return hook


_QUIETED = False


@contextlib.contextmanager
def _quiet_orbax_thread_errors():
    """A failed save is reported once, by :meth:`RunCheckpointer.save`; but Orbax logs it from each of its
    threads with a traceback, and each array write still in flight ends in an event loop Orbax has closed (an
    unraisable ``RuntimeError``, printed with a traceback). Those two kinds of message (nothing else) are dropped
    while a save runs, and for good once one failed (the writes in flight may end later), together with what the
    abandoned writes leave for the interpreter's exit: asyncio's "exception was never retrieved" log (with a
    traceback) and the "coroutine ... was never awaited" warning."""
    global _QUIETED
    if _QUIETED:
        yield
        return
    logger, previous = logging.getLogger("absl"), sys.unraisablehook
    logger.addFilter(_not_a_thread_error)
    sys.unraisablehook = _quiet_unraisable(previous)
    failed = True
    try:
        yield
        failed = False
    finally:
        if failed:
            _QUIETED = True
            logging.getLogger("asyncio").addFilter(_not_an_orphaned_write)
            warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
        else:
            logger.removeFilter(_not_a_thread_error)
            sys.unraisablehook = previous


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


def key_to_data(key: jax.Array) -> np.ndarray:
    """A typed PRNG key as a plain uint32 array (checkpointable)."""
    return np.asarray(jax.random.key_data(key))


def key_from_data(data: Any) -> jax.Array:
    """Inverse of :func:`key_to_data`."""
    return jax.random.wrap_key_data(np.asarray(data, np.uint32))
