"""Typed errors raised by the data package.

Every error names the file and, where there is one, the record (dataset / video / expression) it came from, so
a bad sample surfaces as one readable line in the main process instead of a traceback deep inside a Grain worker.
"""

from __future__ import annotations


class DataFormatError(ValueError):
    """A dataset file or record does not match its published format.

    Attributes:
      path: the offending file (or directory), or ``None`` when the problem is not tied to one file.
      record: a short identifier of the record being read (e.g. ``"revos/UVO/all/-CiPki3XuVI/exp 3"``), or ``None``.
      reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, path: str | None = None, record: str | None = None):
        self.path = None if path is None else str(path)
        self.record = record
        self.reason = reason
        parts = []
        if self.path is not None:
            parts.append(f"file {self.path!s}")
        if record is not None:
            parts.append(f"record {record}")
        where = ", ".join(parts)
        super().__init__(f"{where}: {reason}" if where else reason)

    def __reduce__(self):  # survive pickling across Grain worker processes with all fields intact
        return (_rebuild, (self.reason, self.path, self.record))


def _rebuild(reason, path, record):
    return DataFormatError(reason, path=path, record=record)
