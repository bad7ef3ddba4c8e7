"""GRPO training entry point (the project's main job).

    python -m omnir1_jax.train --config experiments/<name>.py [--set key=value ...]

The experiment file's ``get_config()`` gives the whole run. With ``sft.steps > 0`` a supervised warm-up runs
first (the CPU demo teaches the answer format that way). With ``run.eval_every > 0`` (or ``--eval``) J&F on the
held-out split is measured before GRPO and after it (and every ``eval_every`` steps). The bridge (System 2 +
segmenter) is started as a subprocess when ``bridge.start`` is set, else reached at ``bridge.addresses``.
Multi-host: launch the same command on every host with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` set (``jax.distributed.initialize`` is called when they are).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from omnir1_jax.config import ConfigError, load_config


def _maybe_init_distributed() -> None:
    if os.environ.get("JAX_NUM_PROCESSES") and int(os.environ["JAX_NUM_PROCESSES"]) > 1:
        import jax

        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )


def run(cfg, *, do_eval: bool = True) -> dict:
    """SFT warm-up (optional) -> evaluation -> GRPO -> evaluation; returns a summary dict (also written to
    ``<out_dir>/summary.json``)."""
    from omnir1_jax.runtime import setup as S
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
            print(f"[eval] J&F after GRPO: {summary['after']['J&F']:.4f}", flush=True)
            if "before" in summary:
                print(f"[eval] J&F before {summary['before']['J&F']:.4f} -> after {summary['after']['J&F']:.4f} "
                      f"(delta {summary['after']['J&F'] - summary['before']['J&F']:+.4f})", flush=True)
        summary["plot"] = plot_rewards(os.path.join(out, "metrics.jsonl"), os.path.join(out, "rewards.png"))
    finally:
        bridge.close()
    summary["total_seconds"] = time.time() - t_start
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"[done] {json.dumps({k: v for k, v in summary.items() if k != 'plot'})}", flush=True)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omnir1_jax.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment file defining get_config()")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. --set grpo.beta=0.001 (repeatable)")
    ap.add_argument("--no-eval", action="store_true", help="skip the before/after J&F evaluation")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _maybe_init_distributed()
    run(cfg, do_eval=not args.no_eval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
