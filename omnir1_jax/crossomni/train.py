"""CrossOmni SFT + GRPO entry point (the one learner with the ``crossomni_qa`` task).

    python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:grpo_7b [--stage sft|grpo|both] \
        [--judge hf:checkpoints/Qwen3-Next-80B-A3B-Instruct | bridge:tcp://host:port | python:pkg.mod:fn] \
        [--save DIR] [--set key=value ...]

Checkpoints, resume, metrics and the export to ``<run.out_dir>/hf`` are the learner's (:mod:`omnir1_jax.learner`).
Then ``python -m omnir1_jax.evaluate --config <same file> --split test --policy DIR`` measures accuracy.
"""

from __future__ import annotations

import argparse
import sys

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, load_config
from omnir1_jax.tasks.crossomni_judge import make_judge

_STAGES = {"sft": ("sft",), "grpo": ("grpo",), "both": ("sft", "grpo")}


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.crossomni.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", required=True, help="experiment file, or FILE:VARIANT")
    ap.add_argument("--stage", choices=tuple(_STAGES), default="both")
    ap.add_argument("--judge", default=None, help="hf:PATH | bridge:ADDRESS | python:MODULE:FUNCTION")
    ap.add_argument("--judge-max-new-tokens", type=int, default=8)
    ap.add_argument("--save", default=None, help="also write the final policy here (Hugging Face layout)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.data.task != "qa":
        print(f"error: {args.config}: data.task must be 'qa' for CrossOmni, got {cfg.data.task!r}", file=sys.stderr)
        return 2
    # lazy: the training stack loads once the arguments and the config are good
    from omnir1_jax.train import run

    judge = (
        make_judge(args.judge, run_dir=cfg.run.out_dir, max_new_tokens=args.judge_max_new_tokens)
        if args.stage != "sft"
        else None
    )
    run(cfg, do_eval=False, stages=_STAGES[args.stage], judge=judge, save=args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
