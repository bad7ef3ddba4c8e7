"""Metrics to stdout, a JSONL file and TensorBoard event files (tensorboardX, no TensorFlow)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import numpy as np


def _scalar(value: Any) -> float | None:
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything not array-like is skipped
        return None
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
        return None
    return float(arr.reshape(()))


class MetricsWriter:
    """Writes one record per step to ``<out_dir>/metrics.jsonl`` and ``<out_dir>/tb/``.

    Records are appended and flushed at once, so a killed run keeps every step it logged. Non-finite values are
    written as JSON strings ("nan", "inf") to keep the file valid JSON Lines.
    """

    def __init__(self, out_dir: str, *, tensorboard: bool = True, filename: str = "metrics.jsonl"):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, filename)
        self._file = open(self.path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(out_dir, "tb"), flush_secs=10)

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
            if self._tb is not None:
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
