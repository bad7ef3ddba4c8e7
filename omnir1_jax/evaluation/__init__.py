"""Evaluation: the measures, the dataset protocols and the one two-system evaluator.

The evaluator is used by training (before / every ``run.eval_every`` steps / after GRPO), ``python -m
omnir1_jax.evaluate`` (dataset splits, resumable) and ``python -m omnir1_jax.infer`` (one video)::

    from omnir1_jax.evaluation import evaluate_policy
    result = evaluate_policy(cfg, policy, tokenizer, records, client=bridge.client, out_dir=run_dir, tag="step_100")
    result["metric"], result["value"]      # "J&F" (VOS / Ref-AVS) or "accuracy" (CrossOmni, AVHBench)

Sub-packages and modules:

- :mod:`~omnir1_jax.evaluation.metrics`: pure math — DAVIS J and F (numpy reference and batched JAX), QA letter
  and yes / no extraction and accuracy, multi-seed statistics.
- :mod:`~omnir1_jax.evaluation.protocols`: pure math — the ReVOS / MeViS accumulator, the Ref-AVS protocols.
- :mod:`~omnir1_jax.evaluation.two_system`: System 1 greedy (:func:`omnir1_jax.policy.complete`) -> keyframes
  mapped to the full video -> the bridge (System 2 + SAM2); :class:`TwoSystemPredictor`, :func:`predict_batch`,
  and the greedy answers of the QA suites.
- :mod:`~omnir1_jax.evaluation.results`: the resumable ``results.jsonl``, per-record scores, summary tables,
  prediction PNGs.
- :mod:`~omnir1_jax.evaluation.loop`: the loops and :func:`evaluate_policy`.
- :mod:`~omnir1_jax.evaluation.figures`: overlays drawn from the predictions in hand, the reward plot.
- :mod:`~omnir1_jax.evaluation.seeds`, :mod:`~omnir1_jax.evaluation.sweep_figure`: multi-seed evaluation and
  its figure.

This file imports no sub-module: the loop-level names below are loaded on first use (PEP 562), so ``import
omnir1_jax.evaluation.metrics`` pulls neither the loop, nor the data pipelines, nor the policy. Layer order
(docs/design.md §10): ``metrics`` and ``protocols`` sit with the rewards (pure math); the rest sits above
``policy``, ``data``, ``tasks`` and ``rewards``, below the learner and the entry points. Nothing here imports
torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "loop": ("evaluate_policy", "evaluate_qa", "evaluate_segmentation", "evaluate_yes_no", "headline", "record_kind"),
    "figures": (
        "overlay_frame",
        "overlay_sheet",
        "plot_rewards",
        "record_overlay",
        "reward_figure",
        "reward_series",
        "reward_weights",
    ),
    "results": ("RESULTS", "ResultLog", "read_masks", "score_refavs", "score_vos", "write_masks", "write_summary"),
    "two_system": (
        "Moment",
        "Prediction",
        "TwoSystemPredictor",
        "avhbench_answers",
        "clip_reference",
        "load_frames",
        "moments_of",
        "predict_batch",
        "qa_answers",
        "system1_answers",
    ),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
