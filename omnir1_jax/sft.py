"""Supervised warm-up (SFT) of System 1 alone, through the one learner (:mod:`omnir1_jax.learner`).

    python -m omnir1_jax.sft --config experiments/synthetic_cpu.py [--set sft.steps=100 ...] [--save DIR]

Runs the SFT stage of the experiment (``cfg.sft``; targets from the task: the synthetic world's format-only /
oracle answers, CrossOmni's rationale + letter) with its checkpoints under ``<run.out_dir>/sft`` and writes the
policy as a Hugging Face directory to ``--save`` (default ``<run.out_dir>/hf``). The target builders live in
:mod:`omnir1_jax.tasks.synthetic_targets`.
"""

from __future__ import annotations

import argparse
import sys

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, load_config


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.sft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="experiment file defining get_config(), or FILE:VARIANT")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--save", help="also write the warmed-up policy here as a Hugging Face directory")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # lazy: the training stack loads once the arguments and the config are good
    from omnir1_jax.train import run

    run(cfg, do_eval=False, stages=("sft",), save=args.save)
    if args.save:
        print(f"[sft] saved to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
