"""Benchmark evaluation of the two-system pipeline (SPEC section 6), resumable.

    python -m omnir1_jax.evaluate --config experiments/<name>.py --split SPLIT [--policy DIR] [--out DIR] \
        [--max-items N] [--bridge ADDRESS] [--set key=value ...]

What is evaluated follows ``data.dataset`` of the experiment file:

- ``revos`` / ``synthetic`` (ReVOS layout; split ``valid``): J, F, J&F for referring, reasoning, overall (= mean
  of the two subsets), single- and multi-object expressions;
- ``mevis`` (split ``valid_u``; ``valid`` has no public GT: predictions only, for the benchmark server): J&F;
- ``refavs`` (splits ``test_s``, ``test_u``: J, F, J&F; ``test_n``: S, lower is better);
- ``crossomni`` (``data.root`` = the JSONL file, or a directory holding ``<split>.jsonl``): multiple-choice
  accuracy per task, single- vs cross-modality and overall.
- ``avhbench`` (``data.root`` = the AVHBench release folder or one question JSON file, see
  :mod:`omnir1_jax.data.avhbench`; any split name): yes/no accuracy of the JUDGE subset per task and overall,
  with precision, recall, F1 and the yes ratio (Omni-R1 Table 6 reports the overall accuracy).

Segmentation datasets run System 1 on at most ``data.max_frames`` (24) sampled frames, map its keyframes to the
full video, and let the bridge segment every frame of the video (the benchmark protocol). Written under
``--out`` (default ``<run.out_dir>/eval/<dataset>_<split>``):

- ``results.jsonl``: one line per expression / question, appended and flushed as each finishes (per-frame J
  and F included), so an interrupted evaluation **resumes** where it stopped (``--no-resume`` starts over);
- ``summary.json`` and ``summary.md``: the table, rebuilt from ``results.jsonl`` in the dataset's order, so a
  resumed evaluation gives exactly the table of an uninterrupted one;
- ``predictions/<video>/<exp_id>/<frame>.png``: one 8-bit mask per frame (0 / 255) at the original
  resolution (DAVIS-style directory layout, as the ReVOS / MeViS servers take it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config

VOS_DATASETS = ("revos", "mevis", "synthetic")
RESULTS = "results.jsonl"


# ---------------------------------------------------------------------------------------------- results log
class ResultLog:
    """Append-only JSON-lines log keyed by ``id``. A torn last line (the process died mid-write) is dropped
    and truncated away on open; every append is flushed and fsync'ed."""

    def __init__(self, path: str, resume: bool = True):
        self.path = path
        self.rows: dict[str, dict] = {}
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
        self._f.write(json.dumps(row, allow_nan=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.rows[str(row["id"])] = row

    def close(self) -> None:
        self._f.close()


def _write_json_atomic(path: str, obj: Any, text: str | None = None) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        if text is None:
            json.dump(obj, f, indent=1)
        else:
            f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ predictors
Predictor = Callable[[Sequence[Any]], Iterator[tuple[Any, Any]]]
"""``predict(records)`` yields ``(record, prediction)`` in any order; a prediction has ``.masks`` bool
[L, H, W] over the record's full video (VOS / Ref-AVS) or ``.text`` (QA); ``to_json()`` adds fields to the row."""


class TwoSystemPredictor:
    """System 1 (greedy, batched through the evaluation pipeline) + the bridge on each full video."""

    def __init__(self, cfg: ExperimentConfig, policy, tokenizer, client, *, max_new_tokens: int | None = None):
        self.cfg, self.policy, self.tokenizer, self.client = cfg, policy, tokenizer, client
        self.max_new_tokens = max_new_tokens or cfg.grpo.max_new_tokens
        self.task = "refaid" if cfg.data.task == "refaid" else ("avs" if cfg.data.dataset == "refavs" else "vos")

    def __call__(self, records):
        from omnir1_jax.data import build_pipeline
        from omnir1_jax.eval.runner import clip_reference
        from omnir1_jax.infer import predict_batch
        from omnir1_jax.runtime import setup as S

        if not records:
            return
        by_id = {(r.video_id, r.exp_id): r for r in records}
        pcfg = S.pipeline_config(self.cfg.data, train=False, seed=self.cfg.run.seed, num_epochs=1)
        for batch in build_pipeline(list(records), self.tokenizer, pcfg):
            recs = [by_id[(v, e)] for v, e in zip(batch["video_id"], batch["exp_id"])]
            preds = predict_batch(self.policy, self.tokenizer, self.client, batch, [clip_reference(r) for r in recs],
                                  task=self.task, max_new_tokens=self.max_new_tokens)
            yield from zip(recs, preds)


# --------------------------------------------------------------------------------------------------- VOS
def _vos_accumulator(rows: Sequence[dict]):
    from omnir1_jax.eval.protocols import VOSAccumulator

    revos = any(r.get("type_id") in (0, 1) for r in rows)
    acc = VOSAccumulator() if revos else VOSAccumulator(overall_subsets=None)
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
    from omnir1_jax.eval.protocols import expression_jf

    masks = np.asarray(masks, bool)
    if masks.shape[0] != record.num_frames:
        raise ValueError(f"{record.key}: {masks.shape[0]} predicted frames, the video has {record.num_frames}")
    num_objects = max(1, len(record.anno_ids) or len(record.obj_ids))
    row = {"id": record.key, "video_id": record.video_id, "exp_id": record.exp_id, "subset": record.subset,
           "type_id": record.type_id, "num_objects": num_objects, "num_frames": record.num_frames}
    if record.masks is None:
        return {**row, "J": None, "F": None, "J&F": None, "J_frames": None, "F_frames": None}
    gt = record.load_masks(list(range(record.num_frames)), *masks.shape[1:])
    j, f = expression_jf(gt, masks, use_jax=use_jax)
    jm, fm = float(np.mean(j)), float(np.mean(f))
    return {**row, "J": jm, "F": fm, "J&F": (jm + fm) / 2, "J_frames": [float(x) for x in j],
            "F_frames": [float(x) for x in f]}


def score_refavs(record, masks: np.ndarray) -> dict[str, Any]:
    """Row fields of one Ref-AVS expression: J and F (or S on ``test_n``) with the project's Ref-AVS metrics."""
    from omnir1_jax.eval.refavs import NULL_SPLIT, RefAVSAccumulator

    masks = np.asarray(masks, bool)
    if masks.shape[0] != record.num_frames:
        raise ValueError(f"{record.key}: {masks.shape[0]} predicted frames, the clip has {record.num_frames}")
    acc = RefAVSAccumulator()
    if record.split == NULL_SPLIT:
        rec = acc.add(record.key, NULL_SPLIT, masks)
    else:
        gt = record.load_masks(list(range(record.num_frames)), *masks.shape[1:])
        rec = acc.add(record.key, record.split, masks, gt)
    return {"id": record.key, "video_id": record.video_id, "exp_id": record.exp_id, "split": record.split,
            "num_frames": record.num_frames, "J": rec.j, "F": rec.f, "S": rec.s}


def _refavs_accumulator(rows: Sequence[dict]):
    from omnir1_jax.eval.refavs import RefAVSAccumulator

    acc = RefAVSAccumulator()
    for r in rows:
        acc.add_scores(r["id"], r["split"], r["num_frames"], j=r["J"], f=r["F"], s=r["S"])
    return acc


def _refavs_table(summary: dict) -> str:
    lines = ["| split | J&F | J | F | S | expressions |", "| --- | --- | --- | --- | --- | --- |"]
    for split, s in summary.items():
        cells = [f"{100 * s[k]:.1f}" if k in s else "-" for k in ("J&F", "J", "F", "S")]
        lines.append(f"| {split} | {' | '.join(cells)} | {s['count']} |")
    return "\n".join(lines)


def evaluate_segmentation(records: Sequence[Any], predict: Predictor, out_dir: str, *, kind: str = "vos",
                          resume: bool = True, max_items: int | None = None, use_jax: bool = True,
                          progress: bool = True) -> dict[str, Any]:
    """Evaluate VOS (``kind="vos"``: ReVOS / MeViS protocol) or Ref-AVS (``kind="refavs"``) ``records``.

    Skips records already in ``out_dir/results.jsonl`` (``resume``), predicts the rest (at most ``max_items``
    new ones), writes PNG predictions, appends one row per record, and writes the summary rebuilt from the log
    in ``records`` order. Returns ``{"table", "markdown", "count", "done", "total"}``.
    """
    from omnir1_jax.infer import write_masks

    if kind not in ("vos", "refavs"):
        raise ValueError(f"kind must be 'vos' or 'refavs', got {kind!r}")
    log = ResultLog(os.path.join(out_dir, RESULTS), resume=resume)
    todo = [r for r in records if r.key not in log]
    if max_items is not None:
        todo = todo[:max_items]
    t0, n = time.time(), 0
    try:
        for rec, pred in predict(todo):
            row = score_vos(rec, pred.masks, use_jax=use_jax) if kind == "vos" else score_refavs(rec, pred.masks)
            write_masks(os.path.join(out_dir, "predictions", rec.video_id, rec.exp_id), pred.masks, rec.frame_names)
            extra = pred.to_json() if hasattr(pred, "to_json") else {}
            log.append({**row, **{k: v for k, v in extra.items() if k not in row}})
            n += 1
            if progress:
                print(f"\r[eval] {len(log.rows)}/{len(records)} ({n / max(time.time() - t0, 1e-9):.2f}/s)", end="",
                      flush=True)
    finally:
        log.close()
        if progress and n:
            print(flush=True)
    return write_summary(records, log.rows, out_dir, kind)


def write_summary(records: Sequence[Any], rows_by_id: dict[str, dict], out_dir: str, kind: str) -> dict[str, Any]:
    """Summary of the rows of ``records`` (in that order) -> ``summary.json`` + ``summary.md``."""
    keys = [getattr(r, "key", None) or getattr(r, "id") for r in records]
    rows = [rows_by_id[k] for k in keys if k in rows_by_id]
    result: dict[str, Any] = {"kind": kind, "done": len(rows), "total": len(records), "table": None,
                              "markdown": ""}
    if kind == "vos":
        acc = _vos_accumulator(rows)
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    elif kind == "refavs":
        acc = _refavs_accumulator(rows)
        if len(acc):
            result["table"] = acc.summary()
            result["markdown"] = _refavs_table(result["table"])
    elif kind == "yesno":
        from omnir1_jax.eval.qa import YesNoAccumulator

        acc = YesNoAccumulator()
        for r in rows:
            acc.add(r["id"], r["task"], r["predicted"], r["gold"])
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    else:
        from omnir1_jax.eval.qa import QAAccumulator

        acc = QAAccumulator()
        for r in rows:
            acc.add(r["id"], r["task"], r["predicted"], r["gold"])
        if len(acc):
            result["table"], result["markdown"] = acc.summary(), acc.summary_table()
    result["count"] = len(acc)
    _write_json_atomic(os.path.join(out_dir, "summary.json"), result)
    _write_json_atomic(os.path.join(out_dir, "summary.md"), None, result["markdown"] + "\n")
    return result


# ---------------------------------------------------------------------------------------------------- QA
def evaluate_qa(records: Sequence[Any], answer: Callable[[Sequence[Any]], Iterable[tuple[Any, str]]], out_dir: str,
                *, resume: bool = True, max_items: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Multiple-choice accuracy of CrossOmni records; ``answer(records)`` yields ``(record, completion)``."""
    from omnir1_jax.rewards import extract_choice

    log = ResultLog(os.path.join(out_dir, RESULTS), resume=resume)
    todo = [r for r in records if r.id not in log]
    if max_items is not None:
        todo = todo[:max_items]
    try:
        for rec, text in answer(todo):
            choice = extract_choice(text)
            log.append({"id": rec.id, "task": rec.task, "predicted": choice, "gold": rec.answer,
                        "correct": choice == rec.answer, "answer": text})
            if progress:
                print(f"\r[eval] {len(log.rows)}/{len(records)}", end="", flush=True)
    finally:
        log.close()
        if progress:
            print(flush=True)
    return write_summary(records, log.rows, out_dir, "qa")


# ------------------------------------------------------------------------------------------ AVHBench (yes/no)
def evaluate_yes_no(records: Sequence[Any], answer: Callable[[Sequence[Any]], Iterable[tuple[Any, str]]],
                    out_dir: str, *, resume: bool = True, max_items: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Yes/no accuracy of AVHBench records (``.id``, ``.task``, ``.answer`` Yes / No); ``answer(records)`` yields
    ``(record, completion)``. Resumable like :func:`evaluate_qa`."""
    from omnir1_jax.eval.qa import parse_yes_no

    log = ResultLog(os.path.join(out_dir, RESULTS), resume=resume)
    todo = [r for r in records if r.id not in log]
    if max_items is not None:
        todo = todo[:max_items]
    try:
        for rec, text in answer(todo):
            choice = parse_yes_no(text)
            log.append({"id": rec.id, "task": rec.task, "predicted": choice, "gold": rec.answer,
                        "correct": choice == rec.answer, "answer": text})
            if progress:
                print(f"\r[eval] {len(log.rows)}/{len(records)}", end="", flush=True)
    finally:
        log.close()
        if progress:
            print(flush=True)
    return write_summary(records, log.rows, out_dir, "yesno")


def avhbench_answers(cfg: ExperimentConfig, policy, tokenizer, records: Sequence[Any]) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` per AVHBench record: the clip's frames (System-1 view, at most
    ``data.max_frames``) and its own audio track, with :func:`~omnir1_jax.data.avhbench.avhbench_prompt`;
    batched by ``data.batch_size``."""
    from omnir1_jax.crossomni.batches import clip_example
    from omnir1_jax.crossomni.loops import eos_pad
    from omnir1_jax.data.avhbench import avhbench_prompt
    from omnir1_jax.data.pipeline import collate
    from omnir1_jax.models.qwen2_5_omni import generate
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.rl.rollout import decode_completions

    d = cfg.data
    eos, pad = eos_pad(tokenizer)

    def example(rec):
        return clip_example(rec.video, None, rec.id, rec.question, avhbench_prompt(rec), tokenizer,
                            max_frames=d.max_frames, s1_min_pixels=d.s1_min_pixels, s1_max_pixels=d.s1_max_pixels,
                            dataset="avhbench", split="judge")

    records = list(records)
    for s in range(0, len(records), d.batch_size):
        chunk = records[s:s + d.batch_size]
        batch = collate([example(r) for r in chunk], pad_id=pad, pad_to_multiple=64)
        out = generate(policy, as_model_inputs(policy.config, batch["model_inputs"]),
                       max_new_tokens=cfg.grpo.max_new_tokens, greedy=True, eos_token_id=eos, pad_token_id=pad)
        yield from zip(chunk, decode_completions(tokenizer, np.asarray(out.tokens), np.asarray(out.lengths), eos))


# ----------------------------------------------------------------------------------------------- driver
def evaluate(cfg: ExperimentConfig, split: str, *, out_dir: str | None = None, policy=None, tokenizer=None,
             client=None, predictor: Predictor | None = None, resume: bool = True, max_items: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate the experiment's dataset on ``split`` (see the module docstring). Builds what is not passed:
    the tokenizer and policy from ``cfg.model``, the bridge from ``cfg.bridge`` (closed again at the end)."""
    from omnir1_jax.runtime import setup as S

    ds = cfg.data.dataset
    out_dir = out_dir or os.path.join(cfg.run.out_dir, "eval", f"{ds}_{split}")
    os.makedirs(out_dir, exist_ok=True)
    if ds == "crossomni":
        from omnir1_jax.crossomni.batches import read_split
        from omnir1_jax.crossomni.loops import greedy_answers

        records = read_split(cfg.data, split)
        tokenizer = tokenizer or S.build_tokenizer(cfg.model)
        policy = policy if policy is not None else S.build_policy(cfg.model, seed=cfg.run.seed)
        answer = lambda recs: greedy_answers(cfg, policy, tokenizer, recs)  # noqa: E731
        return evaluate_qa(records, answer, out_dir, resume=resume, max_items=max_items, progress=progress)
    if ds == "avhbench":
        from omnir1_jax.data.avhbench import read_avhbench

        records = read_avhbench(cfg.data.root)
        tokenizer = tokenizer or S.build_tokenizer(cfg.model)
        policy = policy if policy is not None else S.build_policy(cfg.model, seed=cfg.run.seed)
        answer = lambda recs: avhbench_answers(cfg, policy, tokenizer, recs)  # noqa: E731
        return evaluate_yes_no(records, answer, out_dir, resume=resume, max_items=max_items, progress=progress)
    if ds not in VOS_DATASETS + ("refavs",):
        raise ConfigError(f"data.dataset={ds!r} cannot be evaluated (use "
                          f"{VOS_DATASETS + ('refavs', 'crossomni', 'avhbench')})")
    records = S.read_records(cfg.data, split)
    kind = "refavs" if ds == "refavs" else "vos"
    bridge = None
    if predictor is None:
        tokenizer = tokenizer or S.build_tokenizer(cfg.model)
        policy = policy if policy is not None else S.build_policy(cfg.model, seed=cfg.run.seed)
        if client is None:
            bridge = S.open_bridge(cfg.bridge, out_dir, data_roots=[cfg.data.root])
            client = bridge.client
        predictor = TwoSystemPredictor(cfg, policy, tokenizer, client)
    try:
        return evaluate_segmentation(records, predictor, out_dir, kind=kind, resume=resume, max_items=max_items,
                                     progress=progress)
    finally:
        if bridge is not None:
            bridge.close()


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omnir1_jax.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment file defining get_config()")
    ap.add_argument("--split", required=True, help="valid (ReVOS), valid_u (MeViS), test_s/test_u/test_n "
                    "(Ref-AVS), or a CrossOmni split")
    ap.add_argument("--policy", default=None, help="System 1 checkpoint (local HF dir); default model.checkpoint")
    ap.add_argument("--out", default=None, help="output directory (default <run.out_dir>/eval/<dataset>_<split>)")
    ap.add_argument("--max-items", type=int, default=None, help="evaluate at most this many new items")
    ap.add_argument("--bridge", default=None, help="connect to this bridge address instead of bridge.*")
    ap.add_argument("--no-resume", action="store_true", help="discard earlier results in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.policy:
        overrides.append(f"model.checkpoint={args.policy!r}")
    if args.bridge:
        overrides += ["bridge.start=False", f"bridge.addresses=({args.bridge!r},)"]
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = evaluate(cfg, args.split, out_dir=args.out, resume=not args.no_resume, max_items=args.max_items)
    print(result["markdown"])
    print(f"[eval] {result['done']}/{result['total']} done; summary in "
          f"{args.out or os.path.join(cfg.run.out_dir, 'eval', f'{cfg.data.dataset}_{args.split}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
