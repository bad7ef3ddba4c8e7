"""The one two-system evaluator: used by training (before / every ``run.eval_every`` steps / after GRPO),
``python -m omnir1_jax.evaluate`` (benchmark splits, resumable) and ``python -m omnir1_jax.infer`` (one video).

    from omnir1_jax.evaluation import evaluate_policy
    result = evaluate_policy(cfg, policy, tokenizer, records, client=bridge.client, out_dir=run_dir, tag="step_100")
    result["metric"], result["value"]      # "J&F" (VOS / Ref-AVS) or "accuracy" (CrossOmni, AVHBench)

Modules:

- :mod:`~omnir1_jax.evaluation.two_system`: System 1 greedy (:func:`omnir1_jax.policy.complete`) -> keyframes
  mapped to the full video -> the bridge (System 2 + SAM2); :class:`TwoSystemPredictor`, :func:`predict_batch`,
  and the greedy answers of the QA benchmarks.
- :mod:`~omnir1_jax.evaluation.results`: the resumable ``results.jsonl``, per-record scores, summary tables,
  prediction PNGs.
- :mod:`~omnir1_jax.evaluation.core`: the loops and :func:`evaluate_policy`.
- :mod:`~omnir1_jax.evaluation.figures`: overlays drawn from the predictions in hand, the reward plot.

Layer order: above ``policy``, ``data``, ``eval`` (metrics and protocols) and ``rewards``; below the learner
and the entry points. Nothing here imports torch.
"""

from omnir1_jax.evaluation.core import (
    evaluate_policy,
    evaluate_qa,
    evaluate_segmentation,
    evaluate_yes_no,
    headline,
    record_kind,
)
from omnir1_jax.evaluation.figures import (
    overlay_frame,
    overlay_sheet,
    plot_rewards,
    record_overlay,
    reward_figure,
    reward_series,
    reward_weights,
)
from omnir1_jax.evaluation.results import RESULTS, ResultLog, read_masks, score_refavs, score_vos, write_masks, \
    write_summary
from omnir1_jax.evaluation.two_system import (
    Moment,
    Prediction,
    TwoSystemPredictor,
    avhbench_answers,
    clip_reference,
    load_frames,
    moments_of,
    predict_batch,
    qa_answers,
    system1_answers,
)

__all__ = [
    "RESULTS", "Moment", "Prediction", "ResultLog", "TwoSystemPredictor", "avhbench_answers", "clip_reference",
    "evaluate_policy", "evaluate_qa", "evaluate_segmentation", "evaluate_yes_no", "headline", "load_frames",
    "moments_of", "overlay_frame", "overlay_sheet", "plot_rewards", "predict_batch", "qa_answers", "read_masks",
    "record_kind", "record_overlay", "reward_figure", "reward_series", "reward_weights", "score_refavs",
    "score_vos", "system1_answers", "write_masks", "write_summary",
]
