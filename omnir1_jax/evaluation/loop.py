"""The evaluation loops (segmentation, multiple choice, yes / no) and :func:`evaluate_policy`, the one call
training, :mod:`omnir1_jax.evaluate` and notebooks use to score a policy on a list of records."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from omnir1_jax.data.avhbench import AVHBenchRecord
from omnir1_jax.data.crossomni import CrossOmniRecord
from omnir1_jax.data.mcq import MCQRecord
from omnir1_jax.evaluation.figures import record_overlay
from omnir1_jax.evaluation.results import (
    RESULTS,
    ResultLog,
    score_refavs,
    score_vos,
    write_json_atomic,
    write_masks,
    write_summary,
)

Predictor = Callable[[Sequence[Any]], Iterator[tuple[Any, Any]]]
"""``predict(records)`` yields ``(record, prediction)`` in any order; a prediction has ``.masks`` bool
[L, H, W] over the record's full video (VOS / Ref-AVS); ``to_json()`` adds fields to the row."""

Answerer = Callable[[Sequence[Any]], Iterable[tuple[Any, str]]]
"""``answer(records)`` yields ``(record, completion text)``."""


class _Progress:
    """One status line: done / total, rate, ETA and a running mean of the key metric."""

    def __init__(self, total: int, already: int, enabled: bool, what: str = "items", metric: str = "mean"):
        self.total, self.already, self.enabled, self.what, self.metric = total, already, enabled, what, metric
        self.n, self.t0, self.scores = 0, time.time(), []

    def step(self, score: float | None = None) -> None:
        self.n += 1
        if score is not None and math.isfinite(score):
            self.scores.append(score)
        if not self.enabled:
            return
        dt = max(time.time() - self.t0, 1e-9)
        left = (self.total - self.already - self.n) * dt / self.n
        mean = f"  {self.metric} {np.mean(self.scores):.3f}" if self.scores else ""
        print(
            f"\r[eval] {self.already + self.n}/{self.total} {self.what}  {self.n / dt:.2f}/s  "
            f"ETA {int(left) // 60}m{int(left) % 60:02d}s{mean}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.enabled and self.n:
            print(file=sys.stderr, flush=True)


def _valid_fraction(rows: Iterable[dict]) -> float | None:
    """Fraction of rows whose System-1 answer parsed (``valid``; QA: a choice was found); None when no row says
    (a predictor that reports no answers)."""
    flags = [
        bool(r["valid"]) if "valid" in r else r["predicted"] is not None
        for r in rows
        if "valid" in r or "predicted" in r
    ]
    return float(np.mean(flags)) if flags else None


def _rows_of(records: Sequence[Any], rows_by_id: dict[str, dict]) -> list[dict]:
    keys = [getattr(r, "key", None) or r.id for r in records]
    return [rows_by_id[k] for k in keys if k in rows_by_id]


# ------------------------------------------------------------------------------------------- segmentation
def evaluate_segmentation(
    records: Sequence[Any],
    predict: Predictor,
    out_dir: str,
    *,
    kind: str = "vos",
    resume: bool = True,
    max_items: int | None = None,
    use_jax: bool = True,
    progress: bool = True,
    overlays: int = 0,
    write_predictions: bool = True,
    write: bool = True,
    refavs_protocol: str = "release",
    visa_rounding: bool = False,
) -> dict[str, Any]:
    """Evaluate VOS (``kind="vos"``: ReVOS / MeViS protocol) or Ref-AVS (``kind="refavs"``) ``records``.

    ``refavs_protocol`` (``"release"``: the Ref-AVS release's scoring, comparable with published tables;
    ``"project"``: per-expression means, see :mod:`omnir1_jax.evaluation.protocols.refavs`) and ``visa_rounding``
    (ReVOS / MeViS: each expression's J and F rounded to 0.01 percentage points before the means, as VISA's script
    does) choose the protocol; the summary states it (``"protocol"``). Resuming a Ref-AVS log scored with
    another protocol raises ``ValueError``.

    Skips records already in ``out_dir/results.jsonl`` (``resume``), predicts the rest (at most ``max_items``
    new ones), appends one row per record, writes PNG predictions (``write_predictions``) and the overlays of
    the first ``overlays`` records predicted (``out_dir/overlays/``, drawn from the predictions in hand), and
    the summary rebuilt from the log in ``records`` order. ``write=False`` touches no file (the processes
    other than 0 of a multi-process run). Returns ``{"table", "markdown", "count", "done", "total",
    "valid_answers", "protocol"}``.
    """
    if kind not in ("vos", "refavs"):
        raise ValueError(f"kind must be 'vos' or 'refavs', got {kind!r}")
    log = ResultLog(os.path.join(out_dir, RESULTS) if write else None, resume=resume)
    if write and not resume and os.path.isdir(os.path.join(out_dir, "overlays")):
        shutil.rmtree(os.path.join(out_dir, "overlays"))  # a fresh evaluation leaves no stale figure behind
    todo = [r for r in records if r.key not in log]
    if max_items is not None:
        todo = todo[:max_items]
    bar = _Progress(len(records), len(log.rows), progress, "expressions", "mean J&F")
    drawn = 0
    try:
        for rec, pred in predict(todo):
            row = (
                score_vos(rec, pred.masks, use_jax=use_jax)
                if kind == "vos"
                else score_refavs(rec, pred.masks, refavs_protocol)
            )
            if write and write_predictions:
                write_masks(os.path.join(out_dir, "predictions", rec.video_id, rec.exp_id), pred.masks, rec.frame_names)
            extra = pred.to_json() if hasattr(pred, "to_json") else {}
            row = {**row, **{k: v for k, v in extra.items() if k not in row}}
            earlier = getattr(pred, "earlier", None) or []
            if earlier and kind == "vos":  # multi-turn System 1: each earlier answer's own J and F
                row["turns"] = [
                    {
                        "turn": k + 1,
                        **{m: v for m, v in score_vos(rec, e.masks, use_jax=use_jax).items() if m in ("J", "F")},
                    }
                    for k, e in enumerate(earlier)
                ]
            log.append(row)
            if write and drawn < overlays:
                name = f"{rec.video_id}_{rec.exp_id}".replace("/", "_").replace(os.sep, "_")
                record_overlay(rec, pred, row, os.path.join(out_dir, "overlays", f"{name}.png"))
                drawn += 1
            j, f = row.get("J"), row.get("F")
            bar.step((j + f) / 2 if isinstance(j, float) and isinstance(f, float) else None)
    finally:
        log.close()
        bar.close()
    valid = _valid_fraction(_rows_of(records, log.rows))
    extra = {"valid_answers": valid, **per_turn_summary(_rows_of(records, log.rows))}
    return write_summary(
        records,
        log.rows,
        out_dir,
        kind,
        write=write,
        extra=extra,
        refavs_protocol=refavs_protocol,
        visa_rounding=visa_rounding,
    )


def per_turn_summary(rows: Sequence[dict]) -> dict[str, Any]:
    """Multi-turn System 1 rows (with ``turns``): the mean J&F over expressions when System 1 stops after each
    number of answers (``"J&F_by_turns"``: ``{"1": ..., "K": ...}``; K = the final answer) and the fraction of
    final answers revised from the first (``"revised_fraction"``); empty for one-turn rows."""
    rows = [r for r in rows if r.get("turns") and isinstance(r.get("J"), float) and isinstance(r.get("F"), float)]
    if not rows:
        return {}
    k = len(rows[0]["turns"]) + 1
    by = {str(t["turn"]): [] for t in rows[0]["turns"]}
    for r in rows:
        for t in r["turns"]:
            by.setdefault(str(t["turn"]), []).append((t["J"] + t["F"]) / 2)
    by[str(k)] = [(r["J"] + r["F"]) / 2 for r in rows]
    return {
        "J&F_by_turns": {t: float(np.mean(v)) for t, v in by.items()},
        "revised_fraction": float(np.mean([bool(r.get("revised")) for r in rows])),
    }


# ---------------------------------------------------------------------------------------- answered questions
def _choice(rec: Any, text: str) -> str | None:
    """The option letter of ``text`` for a multiple-choice record (its own letters and option texts); never
    raises."""
    # lazy: the QA measures pull in jax and scipy
    from omnir1_jax.evaluation.metrics.qa import extract_letter

    options = getattr(rec, "options", None) or ()
    letters = "".join(k for k, _ in options) or "ABCD"
    return extract_letter(text, letters, [v for _, v in options] or None)


def _evaluate_answers(
    records: Sequence[Any],
    answer: Answerer,
    out_dir: str,
    kind: str,
    *,
    resume: bool,
    max_items: int | None,
    progress: bool,
    write: bool,
) -> dict[str, Any]:
    if kind == "yesno":
        # lazy: the QA measures pull in jax and scipy
        from omnir1_jax.evaluation.metrics.qa import parse_yes_no

        parse = lambda rec, text: parse_yes_no(text)
    else:
        parse = _choice
    log = ResultLog(os.path.join(out_dir, RESULTS) if write else None, resume=resume)
    todo = [r for r in records if r.id not in log]
    if max_items is not None:
        todo = todo[:max_items]
    bar = _Progress(len(records), len(log.rows), progress, "questions", "accuracy")
    try:
        for rec, text in answer(todo):
            choice = parse(rec, text)
            row = {
                "id": rec.id,
                "task": rec.task,
                "predicted": choice,
                "gold": rec.answer,
                "correct": choice == rec.answer,
                "answer": text,
            }
            if getattr(rec, "groups", None):
                row["groups"] = dict(rec.groups)
            log.append(row)
            bar.step(float(choice == rec.answer))
    finally:
        log.close()
        bar.close()
    valid = _valid_fraction(_rows_of(records, log.rows))
    return write_summary(records, log.rows, out_dir, kind, write=write, extra={"valid_answers": valid})


def evaluate_qa(
    records: Sequence[Any],
    answer: Answerer,
    out_dir: str,
    *,
    resume: bool = True,
    max_items: int | None = None,
    progress: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Multiple-choice accuracy of CrossOmni or suite records (:class:`~omnir1_jax.data.mcq.MCQRecord`:
    ``.id``, ``.task``, ``.options``, ``.answer``, optional ``.groups``); ``answer(records)`` yields ``(record,
    completion)``; the choice is :func:`omnir1_jax.evaluation.metrics.qa.extract_letter` of the completion over the
    record's own letters and option texts (never raises: no letter = wrong). Resumable like
    :func:`evaluate_segmentation`."""
    return _evaluate_answers(
        records, answer, out_dir, "qa", resume=resume, max_items=max_items, progress=progress, write=write
    )


def evaluate_yes_no(
    records: Sequence[Any],
    answer: Answerer,
    out_dir: str,
    *,
    resume: bool = True,
    max_items: int | None = None,
    progress: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Yes/no accuracy of AVHBench records (``.id``, ``.task``, ``.answer`` Yes / No); ``answer(records)`` yields
    ``(record, completion)``. Resumable like :func:`evaluate_qa`."""
    return _evaluate_answers(
        records, answer, out_dir, "yesno", resume=resume, max_items=max_items, progress=progress, write=write
    )


# ----------------------------------------------------------------------------------------------- headline
def record_kind(cfg, records: Sequence[Any]) -> str:
    """``vos``, ``refavs``, ``qa`` (CrossOmni or suite multiple choice) or ``yesno`` (AVHBench) for
    ``records``."""
    if records:
        first = records[0]
        if isinstance(first, (CrossOmniRecord, MCQRecord)):
            return "qa"
        if isinstance(first, AVHBenchRecord):
            return "yesno"
        return "refavs" if getattr(first, "dataset", None) == "refavs" or cfg.data.dataset == "refavs" else "vos"
    return {"crossomni": "qa", "avhbench": "yesno", "refavs": "refavs"}.get(cfg.data.dataset, "vos")


def headline(kind: str, table: dict | None) -> dict[str, Any]:
    """The one number of a summary table: ``{"metric", "value"}`` plus ``J&F``, ``J``, ``F`` (segmentation).

    VOS: the ``overall`` group (ReVOS: mean of referring and reasoning; MeViS: all expressions). Ref-AVS: the
    mean over the seen / unseen splits present (``S`` of ``test_n`` when it is the only split, lower is
    better). QA / yes-no: overall accuracy. NaN when nothing was scored."""
    nan = float("nan")
    if kind in ("qa", "yesno"):
        return {"metric": "accuracy", "value": float(table["overall"]["accuracy"]) if table else nan}
    out = {"metric": "J&F", "value": nan, "J&F": nan, "J": nan, "F": nan}
    if not table:
        return out
    if kind == "vos":
        groups = [table["overall"]]
    else:
        groups = [s for s in table.values() if "J&F" in s]
        if not groups:
            return {"metric": "S", "value": float(np.mean([s["S"] for s in table.values() if "S" in s]))}
    for k in ("J&F", "J", "F"):
        out[k] = float(np.mean([g[k] for g in groups]))
    out["value"] = out["J&F"]
    return out


# --------------------------------------------------------------------------------------------- the one call
def evaluate_policy(
    cfg,
    policy,
    tokenizer,
    records: Sequence[Any],
    *,
    client=None,
    out_dir: str,
    tag: str,
    max_items: int | None = None,
    overlays: int = 3,
    progress: bool = True,
    texts: Callable[[Sequence[Any]], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score ``policy`` on ``records`` with the two-system pipeline (or System 1 alone for QA records).

    What is measured follows the records: VOS (ReVOS / MeViS / synthetic: J, F, J&F by the dataset's protocol
    on every frame of the full video; records without GT masks are skipped), Ref-AVS, CrossOmni multiple
    choice or AVHBench yes / no (accuracy; ``client`` may be None). System 1 answers greedily with
    ``grpo.max_new_tokens`` tokens (``texts(records)`` replaces its answers: scripted or cached ones).
    Segmentation is scored with the datasets' evaluation defaults, so training numbers compare with
    ``python -m omnir1_jax.evaluate``'s: the Ref-AVS release's protocol, exact (unrounded) means for ReVOS /
    MeViS; the summary names the protocol (``"protocol"``).

    Writes ``<out_dir>/<tag>/``: ``results.jsonl`` (one row per item, rewritten on each call),
    ``summary.json`` (this function's result), ``summary.md`` and ``overlays/`` (the first ``overlays``
    expressions: prediction vs GT). In a multi-process run every process runs the same evaluation (the policy
    is one program over the global mesh; each process has its own bridge) and returns the numbers; only process
    0 writes.

    Args:
      max_items: evaluate the first N records (default ``run.eval_max_expressions``, 0 = all).

    Returns:
      ``{"metric", "value", "J&F", "J", "F", "protocol" (segmentation), "count", "valid_answers", "table",
      "markdown", "done", "total", "dir"}``.
    """
    # lazy: jax and the two-system predictor (grain) load only for a policy's evaluation
    import jax

    from omnir1_jax.evaluation.two_system import TwoSystemPredictor, avhbench_answers, qa_answers

    records = list(records)
    write = jax.process_index() == 0
    directory = os.path.join(out_dir, tag)
    if write:
        os.makedirs(directory, exist_ok=True)
    kind = record_kind(cfg, records)
    limit = max_items if max_items is not None else (cfg.run.eval_max_expressions or None)
    common = dict(resume=False, progress=progress and write, write=write)  # one progress line, process 0's
    if kind in ("qa", "yesno"):
        recs = list(records)[:limit]
        if texts is not None:

            def answer(rs):
                for s in range(0, len(rs), cfg.data.batch_size):
                    chunk = list(rs[s : s + cfg.data.batch_size])
                    yield from zip(chunk, texts(chunk))
        else:
            fn = qa_answers if kind == "qa" else avhbench_answers
            answer = lambda rs: fn(cfg, policy, tokenizer, rs)
        res = _evaluate_answers(recs, answer, directory, kind, max_items=None, **common)
    else:
        if client is None:
            raise ValueError(f"evaluate_policy({tag!r}): {kind} records need a bridge client (System 2 + SAM2)")
        recs = [r for r in records if kind == "refavs" or r.masks is not None][:limit]
        predictor = TwoSystemPredictor(cfg, policy, tokenizer, client, texts=texts)
        res = evaluate_segmentation(
            recs,
            predictor,
            directory,
            kind=kind,
            overlays=overlays,
            write_predictions=False,
            refavs_protocol="release",
            visa_rounding=False,
            **common,
        )
    result = {
        **headline(kind, res["table"]),
        "count": res["count"],
        "valid_answers": res["valid_answers"],
        "table": res["table"],
        "markdown": res["markdown"],
        "done": res["done"],
        "total": res["total"],
        "kind": kind,
        "tag": tag,
        "dir": directory,
    }
    for key in ("protocol", "J&F_by_turns", "revised_fraction"):  # multi-turn System 1: per turn count
        if key in res:
            result[key] = res[key]
    if write:
        write_json_atomic(os.path.join(directory, "summary.json"), result)
    return result
