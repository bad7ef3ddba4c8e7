"""ReVOS / MeViS expression-level J&F (docs/design.md §7.2).

ReVOS / MeViS (expression level)
--------------------------------
For each referring expression:

1. the target is the union of the masks of the expression's objects on each frame (:func:`merge_objects`);
2. J and F are computed per frame against the prediction (DAVIS definitions, :mod:`omnir1_jax.evaluation.metrics.davis`)
   over **all** frames of the video, including frames where the target is absent (there J = 1 if the
   prediction is empty too, else 0, and F follows the DAVIS empty-boundary rules);
3. the expression's J (resp. F) is the mean over those frames.

A group's J (resp. F) is the mean over its expressions, and its J&F = (J + F) / 2 of those two means.
:class:`VOSAccumulator` keeps one record per expression and reports these groups:

* one per subset label given to ``add`` (ReVOS: ``"referring"`` = ``type_id`` 0, ``"reasoning"`` = ``type_id`` 1;
  ``type_id`` 2 is excluded, see :func:`revos_subset`);
* ``"single"`` / ``"multi"``: expressions with exactly one / more than one target object (all subsets together);
* ``"all"``: every expression pooled;
* ``"overall"``: with ``overall_subsets`` set (ReVOS: referring and reasoning), the **mean of the subsets'
  scores** (not a pooled mean over their expressions); without it (MeViS), the same as ``"all"``.

Rounding (``VOSAccumulator(visa_rounding=True)``): VISA's ReVOS script (``tools/eval_revos.py``) rounds each
expression's J and F, in percent, to two decimals (Python ``round(100 * x, 2)``) before any mean; the option
reproduces that (the difference is of the order of 1e-4 percentage points). Off by default (exact means); the
summary's ``"protocol"`` (:meth:`VOSAccumulator.describe`) and every JSONL row say which was used.

Scores are fractions in [0, 1] (papers print them x100). Records and the summary are plain JSON-serialisable
dicts; :meth:`VOSAccumulator.write_jsonl` writes one record per line, atomically.

Ref-AVS lives in :mod:`omnir1_jax.evaluation.protocols.refavs`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from omnir1_jax.evaluation.metrics.davis import db_eval_boundary, db_eval_iou
from omnir1_jax.evaluation.metrics.davis_jax import db_eval_jf_jax
from omnir1_jax.evaluation.metrics.jsonl import write_jsonl_atomic
from omnir1_jax.evaluation.metrics.masks import check_binary

__all__ = [
    "REVOS_SUBSETS",
    "ExpressionScore",
    "VOSAccumulator",
    "expression_jf",
    "merge_objects",
    "revos_subset",
]

REVOS_SUBSETS: dict[int, str | None] = {0: "referring", 1: "reasoning", 2: None}
"""ReVOS ``type_id`` -> subset label; ``None`` = excluded from evaluation (type 2)."""

_RESERVED = ("single", "multi", "all", "overall")


def revos_subset(type_id: int) -> str | None:
    """ReVOS subset of an expression: ``"referring"`` (0), ``"reasoning"`` (1), or ``None`` (2: excluded).

    Raises:
      ValueError: any other ``type_id``.
    """
    if type_id not in REVOS_SUBSETS:
        raise ValueError(f"ReVOS type_id must be 0, 1 or 2, got {type_id!r}")
    return REVOS_SUBSETS[type_id]


def merge_objects(object_masks) -> np.ndarray:
    """Expression target: union over objects. ``[O, T, H, W]`` -> ``[T, H, W]`` bool (O = 0 is not allowed).

    Raises:
      MaskInputError / ValueError: not 4-D, no objects, or values other than 0/1.
    """
    masks = check_binary("object_masks", object_masks, (4,))
    if masks.shape[0] == 0:
        raise ValueError("object_masks has no objects (shape[0] == 0); pass an all-zero [1, T, H, W] instead")
    return masks.any(axis=0)


def expression_jf(
    target, prediction, void_pixels=None, bound_th: float = 0.008, use_jax: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of one expression over all T frames.

    Args:
      target: merged target ``[T, H, W]`` (see :func:`merge_objects`).
      prediction: predicted mask ``[T, H, W]``.
      void_pixels: optional ``[T, H, W]`` pixels to ignore.
      bound_th: DAVIS boundary tolerance.
      use_jax: compute with :func:`~omnir1_jax.evaluation.metrics.davis_jax.db_eval_jf_jax` (same values to float32
        rounding, ~100x faster on long videos) instead of the numpy reference.

    Returns:
      ``(j, f)``, float64 arrays ``[T]``.
    """
    if use_jax:
        target = check_binary("target", target, (3,))
        prediction = check_binary("prediction", prediction, (3,))
        void = None if void_pixels is None else check_binary("void_pixels", void_pixels, (3,))
        j, f = db_eval_jf_jax(target, prediction, void, bound_th=bound_th)
        return np.asarray(j, np.float64), np.asarray(f, np.float64)
    j = np.atleast_1d(db_eval_iou(target, prediction, void_pixels))
    f = np.atleast_1d(db_eval_boundary(target, prediction, void_pixels, bound_th))
    return j, f


@dataclasses.dataclass(frozen=True)
class ExpressionScore:
    """One expression's result. ``j`` / ``f`` are means over its ``num_frames`` frames."""

    expression_id: str
    subset: str | None
    num_objects: int
    num_frames: int
    j: float
    f: float

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2.0

    def to_json(self) -> dict:
        """Plain dict with keys expression_id, subset, num_objects, num_frames, J, F, J&F."""
        return {
            "expression_id": self.expression_id,
            "subset": self.subset,
            "num_objects": self.num_objects,
            "num_frames": self.num_frames,
            "J": self.j,
            "F": self.f,
            "J&F": self.jf,
        }


def _group_score(records: Sequence[ExpressionScore]) -> dict:
    j = float(np.mean([r.j for r in records]))
    f = float(np.mean([r.f for r in records]))
    return {"J": j, "F": f, "J&F": (j + f) / 2.0, "count": len(records)}


class VOSAccumulator:
    """Collects per-expression J/F of a ReVOS or MeViS run and summarises them (see the module docstring).

    Args:
      overall_subsets: subsets whose scores are averaged into ``"overall"`` (ReVOS: ``("referring",
        "reasoning")``, the default); ``None`` makes ``"overall"`` the pooled mean over all expressions (MeViS).
    """

    def __init__(
        self, overall_subsets: Sequence[str] | None = ("referring", "reasoning"), *, visa_rounding: bool = False
    ):
        if overall_subsets is not None:
            overall_subsets = tuple(overall_subsets)
            bad = [s for s in overall_subsets if not isinstance(s, str) or s in _RESERVED]
            if bad or not overall_subsets:
                raise ValueError(f"overall_subsets must be non-empty subset names not in {_RESERVED}, got {bad}")
        self.overall_subsets = overall_subsets
        self.visa_rounding = bool(visa_rounding)
        self._records: dict[str, ExpressionScore] = {}

    def describe(self) -> dict:
        """The protocol as a JSON-able dict: ``{"name": "visa_rounded" | "exact", "visa_rounding": bool,
        "overall_subsets": [...] | None}``."""
        return {
            "name": "visa_rounded" if self.visa_rounding else "exact",
            "visa_rounding": self.visa_rounding,
            "overall_subsets": None if self.overall_subsets is None else list(self.overall_subsets),
        }

    def __len__(self) -> int:
        return len(self._records)

    def add(self, expression_id: str, subset: str | None, num_objects: int, j, f) -> ExpressionScore:
        """Records one expression from its per-frame J ``[T]`` and F ``[T]`` (all frames of the video).

        Args:
          expression_id: unique id (make it unique across videos, e.g. ``"<video>/<exp_id>"``).
          subset: subset label (``"referring"`` / ``"reasoning"`` for ReVOS), or ``None`` (MeViS).
          num_objects: number of target objects (1 -> ``"single"``, > 1 -> ``"multi"``, 0 -> neither).

        The record's J and F are the frame means, rounded as VISA does when ``visa_rounding`` is set.

        Raises:
          ValueError: duplicate id, reserved subset name, negative ``num_objects``, J and F of different
            lengths, an empty or non-finite J/F, or a value outside [0, 1].
        """
        expression_id = str(expression_id)
        if expression_id in self._records:
            raise ValueError(f"expression {expression_id!r} was already added")
        if subset is not None and (not isinstance(subset, str) or subset in _RESERVED):
            raise ValueError(f"expression {expression_id!r}: subset must be a str not in {_RESERVED}, got {subset!r}")
        if int(num_objects) != num_objects or num_objects < 0:
            raise ValueError(f"expression {expression_id!r}: num_objects must be an int >= 0, got {num_objects!r}")
        j = np.asarray(j, np.float64).reshape(-1)
        f = np.asarray(f, np.float64).reshape(-1)
        if j.shape != f.shape or j.size == 0:
            raise ValueError(
                f"expression {expression_id!r}: J has {j.size} frames and F has {f.size} (need equal, > 0)"
            )
        for name, v in (("J", j), ("F", f)):
            if not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1:
                raise ValueError(f"expression {expression_id!r}: {name} must be finite and in [0, 1], got {v.tolist()}")
        jm, fm = float(j.mean()), float(f.mean())
        if self.visa_rounding:  # VISA: round(100 * x, 2) per expression, kept here as a fraction
            jm, fm = round(100.0 * jm, 2) / 100.0, round(100.0 * fm, 2) / 100.0
        record = ExpressionScore(expression_id, subset, int(num_objects), int(j.size), jm, fm)
        self._records[expression_id] = record
        return record

    def add_revos(self, expression_id: str, type_id: int, num_objects: int, j, f) -> ExpressionScore | None:
        """:meth:`add` with the ReVOS subset of ``type_id``; type 2 is skipped (returns ``None``)."""
        subset = revos_subset(type_id)
        if subset is None:
            return None
        return self.add(expression_id, subset, num_objects, j, f)

    def records(self) -> list[ExpressionScore]:
        """Per-expression results in insertion order."""
        return list(self._records.values())

    def summary(self) -> dict[str, dict]:
        """``{group: {"J", "F", "J&F", "count"}}`` for every non-empty group (see the module docstring).

        ``"overall"`` with ``overall_subsets`` is the mean of the listed subsets' J, F and J&F; its ``count`` is
        their total number of expressions and ``"subsets"`` lists the subsets it used (missing ones are skipped).

        Raises:
          ValueError: nothing was added.
        """
        records = self.records()
        if not records:
            raise ValueError("summary() of an empty accumulator")
        out: dict[str, dict] = {}
        for subset in dict.fromkeys(r.subset for r in records if r.subset is not None):
            out[subset] = _group_score([r for r in records if r.subset == subset])
        for name, keep in (("single", lambda r: r.num_objects == 1), ("multi", lambda r: r.num_objects > 1)):
            group = [r for r in records if keep(r)]
            if group:
                out[name] = _group_score(group)
        out["all"] = _group_score(records)
        if self.overall_subsets is None:
            out["overall"] = dict(out["all"])
        else:
            used = [s for s in self.overall_subsets if s in out]
            if used:
                j = float(np.mean([out[s]["J"] for s in used]))
                f = float(np.mean([out[s]["F"] for s in used]))
                count = sum(out[s]["count"] for s in used)
                out["overall"] = {"J": j, "F": f, "J&F": (j + f) / 2.0, "count": count, "subsets": used}
        return out

    def summary_table(self) -> str:
        """The summary as a Markdown table, scores x100 with one decimal (as the papers print them)."""
        rows = ["| group | J&F | J | F | expressions |", "| --- | --- | --- | --- | --- |"]
        for name, s in self.summary().items():
            rows.append(f"| {name} | {100 * s['J&F']:.1f} | {100 * s['J']:.1f} | {100 * s['F']:.1f} | {s['count']} |")
        return "\n".join(rows)

    def write_jsonl(self, path: str | os.PathLike) -> None:
        """Writes one :meth:`ExpressionScore.to_json` line per expression (atomically), each with the protocol
        name (``"protocol": "exact"`` or ``"visa_rounded"``)."""
        name = self.describe()["name"]
        write_jsonl_atomic(path, ({**r.to_json(), "protocol": name} for r in self.records()))
