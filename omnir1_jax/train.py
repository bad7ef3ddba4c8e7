"""GRPO training entry point (the project's main job).

    python -m omnir1_jax.train --config experiments/<name>.py [--set key=value ...]

The experiment file's ``get_config()`` gives the whole run. With ``sft.steps > 0`` a supervised warm-up runs
first (the CPU demo teaches the answer format that way). With ``run.eval_every > 0`` (or ``--eval``) J&F on the
held-out split is measured before GRPO and after it (and every ``eval_every`` steps). The bridge (System 2 +
segmenter) is started as a subprocess when ``bridge.start`` is set, else reached at ``bridge.addresses``.
Multi-host: launch the same command on every host with ``--coordinator/--num-processes/--process-id`` or
``OMNIR1_COORDINATOR`` / ``OMNIR1_NUM_PROCESSES`` / ``OMNIR1_PROCESS_ID`` (auto-detected on a TPU pod slice and
under SLURM); see :mod:`omnir1_jax.runtime.distributed` for the launch recipes. Only process 0 writes the
metrics, plots and summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, load_config


def run(cfg, *, do_eval: bool = True) -> dict:
    """SFT warm-up (optional) -> evaluation -> GRPO -> evaluation; returns a summary dict (also written to
    ``<out_dir>/summary.json``)."""
    from omnir1_jax.runtime import setup as S
    from omnir1_jax.runtime.distributed import is_primary
    from omnir1_jax.runtime.report import evaluate_split, plot_rewards
    from omnir1_jax.sft import SFTTrainer
    from omnir1_jax.trainer import GRPOTrainer

    t_start = time.time()
    out = cfg.run.out_dir
    os.makedirs(out, exist_ok=True)
    tokenizer = S.build_tokenizer(cfg.model)
    policy = S.build_policy(cfg.model, seed=cfg.run.seed)
    records = S.read_records(cfg.data, cfg.data.split)
    summary: dict = {"name": cfg.name}
    resuming = cfg.run.resume and os.path.isdir(os.path.join(out, "checkpoints")) and \
        any(d.isdigit() for d in os.listdir(os.path.join(out, "checkpoints")))
    bridge = S.open_bridge(cfg.bridge, out, data_roots=[cfg.data.root])
    try:
        if cfg.sft.steps > 0 and not resuming:
            t0 = time.time()
            SFTTrainer(cfg, policy, tokenizer, records).run()
            summary["sft_seconds"] = time.time() - t0
        eval_records = S.read_records(cfg.data, cfg.run.eval_split) if do_eval else []
        if do_eval and not resuming:
            summary["before"] = evaluate_split(cfg, policy, tokenizer, eval_records, bridge, tag="before_grpo")
            if is_primary():
                print(f"[eval] J&F before GRPO (after SFT): {summary['before']['J&F']:.4f}", flush=True)
        trainer = GRPOTrainer(cfg, policy=policy, tokenizer=tokenizer, bridge=bridge, records=records)
        t0 = time.time()
        try:
            trainer.train()
        finally:
            trainer.close()
        summary["grpo_seconds"] = time.time() - t0
        if do_eval:
            summary["after"] = evaluate_split(cfg, policy, tokenizer, eval_records, bridge, tag="after_grpo")
            if is_primary():
                print(f"[eval] J&F after GRPO: {summary['after']['J&F']:.4f}", flush=True)
            if "before" in summary and is_primary():
                print(f"[eval] J&F before {summary['before']['J&F']:.4f} -> after {summary['after']['J&F']:.4f} "
                      f"(delta {summary['after']['J&F'] - summary['before']['J&F']:+.4f})", flush=True)
        if is_primary():
            summary["plot"] = plot_rewards(os.path.join(out, "metrics.jsonl"), os.path.join(out, "rewards.png"))
    finally:
        bridge.close()
    summary["total_seconds"] = time.time() - t_start
    if is_primary():
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(f"[done] {json.dumps({k: v for k, v in summary.items() if k != 'plot'})}", flush=True)
    return summary


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omnir1_jax.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment file defining get_config()")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. --set grpo.beta=0.001 (repeatable)")
    ap.add_argument("--no-eval", action="store_true", help="skip the before/after J&F evaluation")
    ap.add_argument("--coordinator", help="multi-host: host:port of process 0 (or OMNIR1_COORDINATOR)")
    ap.add_argument("--num-processes", type=int, help="multi-host: number of processes (or OMNIR1_NUM_PROCESSES)")
    ap.add_argument("--process-id", type=int, help="multi-host: this process's index (or OMNIR1_PROCESS_ID)")
    args = ap.parse_args(argv)
    from omnir1_jax.runtime import distributed

    try:
        cfg = load_config(args.config, args.set)
        dist = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    distributed.initialize(dist)
    run(cfg, do_eval=not args.no_eval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
