"""Metrics to stdout, a JSONL file and TensorBoard event files (tensorboardX, no TensorFlow)."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def _scalar(value: Any) -> float | None:
    try:
        arr = np.asarray(value)
    except Exception:
        return None
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
        return None
    return float(arr.reshape(()))


_WRITERS = itertools.count()


class MetricsWriter:
    """Writes one record per step to ``<out_dir>/metrics.jsonl`` and ``<out_dir>/tb/``.

    Records are appended and flushed at once, so a killed run keeps every step it logged. Non-finite values are
    written as JSON strings ("nan", "inf") to keep the file valid JSON Lines. A resumed run calls
    :meth:`rewind` with the step it restored, so the steps it re-runs are logged exactly once.
    """

    def __init__(self, out_dir: str, *, tensorboard: bool = True, filename: str = "metrics.jsonl"):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, filename)
        self._file = open(self.path, "a", buffering=1)
        self._tb = None  # opened at the first record (after a rewind, with its purge step)
        self._tb_dir = os.path.join(out_dir, "tb") if tensorboard else None
        self._tb_purge: int | None = None

    def _tensorboard(self):
        if self._tb is None and self._tb_dir is not None:
            from tensorboardX import SummaryWriter

            # a file of its own per writer (tensorboardX names files by the second: a writer reopened within the
            # same second would overwrite the last one's)
            self._tb = SummaryWriter(
                self._tb_dir,
                flush_secs=10,
                purge_step=self._tb_purge,
                filename_suffix=f".{os.getpid()}-{next(_WRITERS)}",
            )
        return self._tb

    def rewind(self, step: int) -> int:
        """Forget every record after ``step`` (the step a resumed run restored: it re-runs the later ones), and a
        torn last line; returns how many lines were dropped.

        The file is rewritten atomically (a temporary file in the same directory, flushed to disk, then renamed
        over it), so a kill at any moment leaves either the old file or the new one. TensorBoard's events of the
        later steps are purged (``purge_step``: TensorBoard hides the events of steps >= it written before)."""
        self._file.close()
        folder, name = os.path.split(self.path)
        for stale in os.listdir(folder):  # a rewind killed before its rename: the old file is still whole
            if stale.startswith(f"{name}.rewind-"):
                os.remove(os.path.join(folder, stale))
        kept, dropped, unterminated = [], 0, False
        with open(self.path) as f:
            for line in f:
                try:
                    keep = int(json.loads(line)["step"]) <= step
                except (ValueError, KeyError, TypeError):
                    keep = False
                if keep:
                    unterminated = unterminated or not line.endswith("\n")
                    kept.append(line if line.endswith("\n") else line + "\n")
                elif line.strip():
                    dropped += 1
        if dropped or unterminated:
            tmp = f"{self.path}.rewind-{os.getpid()}"
            with open(tmp, "w") as f:
                f.writelines(kept)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            print(
                f"[metrics] resumed at step {step}: dropped {dropped} record(s) of later steps from {self.path} "
                "(they are re-run)",
                flush=True,
            )
        self._file = open(self.path, "a", buffering=1)
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        self._tb_purge = step + 1
        return dropped

    def write(self, step: int, metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
        row: dict[str, Any] = {"step": int(step), "time": time.time()}
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            v = _scalar(value)
            if v is None:
                continue
            name = f"{prefix}{key}"
            clean[name] = v
            row[name] = v if math.isfinite(v) else str(v)
            if self._tensorboard() is not None:
                self._tb.add_scalar(name, v, int(step))
        self._file.write(json.dumps(row) + "\n")
        return clean

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_jsonl(path: str) -> list[dict]:
    """Read a metrics file, skipping a torn last line (a run killed mid-write)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def format_metrics(metrics: Mapping[str, float], keys: tuple[str, ...]) -> str:
    """A compact one-line summary of the chosen keys for progress output."""
    parts = []
    for k in keys:
        if k in metrics:
            parts.append(f"{k}={metrics[k]:.4g}")
    return " ".join(parts)
