"""What an evaluation writes and how it is scored: the resumable results log, per-record scores (VOS, Ref-AVS),
the summary tables rebuilt from the log, and the per-frame prediction PNGs.

Every function takes a ``write`` switch (or a ``None`` path) so that in a multi-process run only process 0
touches the disk while every process computes the same numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

RESULTS = "results.jsonl"


# ---------------------------------------------------------------------------------------------- results log
class ResultLog:
    """Append-only JSON-lines log keyed by ``id``. A torn last line (the process died mid-write) is dropped
    and truncated away on open; every append is flushed and fsync'ed. ``path=None`` keeps the rows in memory
    only (the processes of a multi-process run other than process 0)."""

    def __init__(self, path: str | None, resume: bool = True):
        self.path = path
        self.rows: dict[str, dict] = {}
        self._f = None
        if path is None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if resume and os.path.exists(path):
            good = 0
            with open(path, "rb") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        break
                    if not line.endswith(b"\n"):
                        break
                    self.rows[str(row["id"])] = row
                    good += len(line)
            with open(path, "r+b") as f:
                f.truncate(good)
        elif os.path.exists(path):
            os.unlink(path)
        self._f = open(path, "a", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def append(self, row: dict) -> None:
        if self._f is not None:
            self._f.write(json.dumps(row, allow_nan=False) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        self.rows[str(row["id"])] = row

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def write_json_atomic(path: str, obj: Any, text: str | None = None) -> None:
    """``obj`` as JSON (or ``text`` as it is) into ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        if text is None:
            json.dump(obj, f, indent=1)
        else:
            f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------- VOS
def _vos_accumulator(rows: Sequence[dict], visa_rounding: bool = False):
    # lazy: the protocols pull in jax and scipy
    from omnir1_jax.evaluation.protocols import VOSAccumulator

    revos = any(r.get("type_id") in (0, 1) for r in rows)
    acc = (
        VOSAccumulator(visa_rounding=visa_rounding)
        if revos
        else VOSAccumulator(overall_subsets=None, visa_rounding=visa_rounding)
    )
    for r in rows:
        if r.get("J_frames") is None:
            continue
        if revos:
            acc.add_revos(r["id"], r["type_id"], r["num_objects"], r["J_frames"], r["F_frames"])
        else:
            acc.add(r["id"], r["subset"] or None, r["num_objects"], r["J_frames"], r["F_frames"])
    return acc


def score_vos(record, masks: np.ndarray, *, use_jax: bool = True) -> dict[str, Any]:
    """Row fields of one expression: per-frame J / F against the union target over every frame (None without
    GT), means and J&F."""
    # lazy: the protocols pull in jax and scipy
    from omnir1_jax.evaluation.protocols import expression_jf

    masks = np.asarray(masks, bool)
    if masks.shape[0] != record.num_frames:
        raise ValueError(f"{record.key}: {masks.shape[0]} predicted frames, the video has {record.num_frames}")
    num_objects = max(1, len(record.anno_ids) or len(record.obj_ids))
    row = {
        "id": record.key,
        "video_id": record.video_id,
        "exp_id": record.exp_id,
        "subset": record.subset,
        "type_id": record.type_id,
        "num_objects": num_objects,
        "num_frames": record.num_frames,
    }
    if record.masks is None:
        return {**row, "J": None, "F": None, "J&F": None, "J_frames": None, "F_frames": None}
    gt = record.load_masks(list(range(record.num_frames)), *masks.shape[1:])
    j, f = expression_jf(gt, masks, use_jax=use_jax)
    jm, fm = float(np.mean(j)), float(np.mean(f))
    return {
        **row,
        "J": jm,
        "F": fm,
        "J&F": (jm + fm) / 2,
        "J_frames": [float(x) for x in j],
        "F_frames": [float(x) for x in f],
    }


# ----------------------------------------------------------------------------------------------- Ref-AVS
def score_refavs(record, masks: np.ndarray, protocol: str = "release") -> dict[str, Any]:
    """Row fields of one Ref-AVS expression under ``protocol`` (``"release"`` / ``"project"``): J and F (or S on
    ``test_n``), the pooled quantities the release's batch means need, and the protocol's name."""
    # lazy: the protocols pull in jax and scipy
    from omnir1_jax.evaluation.protocols.refavs import NULL_SPLIT, RefAVSAccumulator, RefAVSConfig

    masks = np.asarray(masks, bool)
    if masks.shape[0] != record.num_frames:
        raise ValueError(f"{record.key}: {masks.shape[0]} predicted frames, the clip has {record.num_frames}")
    acc = RefAVSAccumulator(RefAVSConfig.named(protocol))
    if record.split == NULL_SPLIT:
        rec = acc.add(record.key, NULL_SPLIT, masks)
    else:
        gt = record.load_masks(list(range(record.num_frames)), *masks.shape[1:])
        rec = acc.add(record.key, record.split, masks, gt)
    return {
        "id": record.key,
        "video_id": record.video_id,
        "exp_id": record.exp_id,
        "split": record.split,
        "num_frames": record.num_frames,
        "J": rec.j,
        "F": rec.f,
        "S": rec.s,
        "J_frames": None if rec.j_frames is None else list(rec.j_frames),
        "F_curve_sum": None if rec.f_curve_sum is None else list(rec.f_curve_sum),
        "F_count": rec.f_count,
        "fg_pixels": rec.fg_pixels,
        "pixels": rec.pixels,
        "protocol": protocol,
    }


def _refavs_accumulator(rows: Sequence[dict], protocol: str = "release"):
    # lazy: the protocols pull in jax and scipy
    from omnir1_jax.evaluation.protocols.refavs import RefAVSAccumulator, RefAVSConfig

    acc = RefAVSAccumulator(RefAVSConfig.named(protocol))
    for r in rows:
        # rows of another protocol lack (or mean something else by) the pooled fields: never mix them
        if r.get("protocol") != protocol:
            raise ValueError(
                f"{r['id']}: results.jsonl row was scored with Ref-AVS protocol "
                f"{r.get('protocol')!r}, not {protocol!r}; evaluate with --no-resume (or that protocol)"
            )
        acc.add_scores(
            r["id"],
            r["split"],
            r["num_frames"],
            j=r["J"],
            f=r["F"],
            s=r["S"],
            j_frames=r["J_frames"],
            f_curve_sum=r["F_curve_sum"],
            f_count=r["F_count"],
            fg_pixels=r["fg_pixels"],
            pixels=r["pixels"],
        )
    return acc


def _refavs_table(summary: dict) -> str:
    lines = ["| split | J&F | J | F | S | expressions |", "| --- | --- | --- | --- | --- | --- |"]
    for split, s in summary.items():
        cells = [f"{100 * s[k]:.1f}" if k in s else "-" for k in ("J&F", "J", "F", "S")]
        lines.append(f"| {split} | {' | '.join(cells)} | {s['count']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ summary
def write_summary(
    records: Sequence[Any],
    rows_by_id: dict[str, dict],
    out_dir: str,
    kind: str,
    *,
    write: bool = True,
    extra: dict[str, Any] | None = None,
    refavs_protocol: str = "release",
    visa_rounding: bool = False,
) -> dict[str, Any]:
    """Summary of the rows of ``records`` (in that order) -> ``summary.json`` + ``summary.md`` (unless not
    ``write``). ``kind``: ``vos``, ``refavs``, ``qa`` (multiple choice) or ``yesno``; ``extra`` fields are
    added to the result. Segmentation kinds are scored with ``refavs_protocol`` (``"release"`` /
    ``"project"``) or ``visa_rounding`` (VOS) and state that protocol (``result["protocol"]`` and a first
    ``Protocol: <name>`` line of the Markdown)."""
    keys = [getattr(r, "key", None) or r.id for r in records]
    rows = [rows_by_id[k] for k in keys if k in rows_by_id]
    result: dict[str, Any] = {"kind": kind, "done": len(rows), "total": len(records), "table": None, "markdown": ""}
    if kind == "vos":
        acc = _vos_accumulator(rows, visa_rounding)
        result["protocol"] = acc.describe()
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    elif kind == "refavs":
        acc = _refavs_accumulator(rows, refavs_protocol)
        result["protocol"] = acc.config.describe()
        if len(acc):
            result["table"] = acc.summary()
            result["markdown"] = _refavs_table(result["table"])
    elif kind == "yesno":
        # lazy: the QA measures pull in jax and scipy
        from omnir1_jax.evaluation.metrics.qa import YesNoAccumulator

        acc = YesNoAccumulator()
        for r in rows:
            acc.add(r["id"], r["task"], r["predicted"], r["gold"])
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    else:
        # lazy: the QA measures pull in jax and scipy
        from omnir1_jax.evaluation.metrics.qa import QAAccumulator

        acc = QAAccumulator()
        for r in rows:
            acc.add(r["id"], r["task"], r["predicted"], r["gold"], r.get("groups"))
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    result["count"] = len(acc)
    if "protocol" in result:
        result["markdown"] = f"Protocol: {result['protocol']['name']}\n\n" + result["markdown"]
    result.update(extra or {})
    if result.get("J&F_by_turns"):  # multi-turn System 1 (vos_interactive)
        turns = ", ".join(
            f"{t} answer{'s' if t != '1' else ''}: {v * 100:.1f}" for t, v in result["J&F_by_turns"].items()
        )
        result["markdown"] += (
            f"\n\nJ&F by System 1's answers (mean over expressions): {turns}; final answers "
            f"revised from the first: {result.get('revised_fraction', 0.0) * 100:.1f} %"
        )
    if write:
        write_json_atomic(os.path.join(out_dir, "summary.json"), result)
        write_json_atomic(os.path.join(out_dir, "summary.md"), None, result["markdown"] + "\n")
    return result


# ------------------------------------------------------------------------------------------------- masks
def write_masks(directory: str, masks: np.ndarray, names: Sequence[str]) -> list[str]:
    """One 8-bit PNG per frame (0 background, 255 object) named ``<name>.png``, written into a temporary
    directory that is renamed into place (an interrupted write leaves no partial folder)."""
    from PIL import Image

    masks = np.asarray(masks, bool)
    if len(names) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(names)} frame names")
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
    try:
        for m, n in zip(masks, names):
            Image.fromarray(m.astype(np.uint8) * 255).save(os.path.join(tmp, f"{n}.png"))
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.rename(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return [os.path.join(directory, f"{n}.png") for n in names]


def read_masks(directory: str, names: Sequence[str]) -> np.ndarray:
    """Masks written by :func:`write_masks` as bool ``[L, H, W]``."""
    from PIL import Image

    out = []
    for n in names:
        with Image.open(os.path.join(directory, f"{n}.png")) as im:
            out.append(np.asarray(im.convert("L")) > 127)
    return np.stack(out)
