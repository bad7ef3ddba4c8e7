"""Atomic JSON-lines writing for evaluation results (no half-written file is ever left behind)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Writes dicts as JSON lines to ``path`` via a temporary file + rename, so no half-written file remains.

    Raises:
      ValueError: a row holds a non-finite float (JSON has no NaN) or a value JSON cannot encode.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".jsonl", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, (TypeError, ValueError)):
            raise ValueError(f"cannot write {path}: {err}") from err
        raise
