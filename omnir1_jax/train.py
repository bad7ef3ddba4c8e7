"""Training entry point (the project's main job): SFT and / or GRPO through the one learner.

    python -m omnir1_jax.train --config experiments/<name>.py [--set key=value ...] [--stages sft,grpo]

The experiment file's ``get_config()`` gives the whole run; its ``data.task`` picks the task plug-in (``vos``,
``refaid``, ``qa``). With ``sft.steps > 0`` a supervised warm-up runs first (the CPU demo teaches the answer
format that way). Evaluation on ``run.eval_split`` runs before GRPO, every ``run.eval_every`` GRPO steps and
after GRPO (``--no-eval`` skips it). The final policy is written as a Hugging Face directory to
``<run.out_dir>/hf`` (weights + tokenizer / processor files). The bridge (System 2 + segmenter) is started as a
subprocess when ``bridge.start`` is set, else reached at ``bridge.addresses``. ``bridge.grounder =
"qwen2_5_omni:@policy"`` makes System 2 the policy itself (Omni-R1 section 4.1): the frozen pretrained
``model.checkpoint`` while training and for the evaluations before / during GRPO, the exported trained policy for
the evaluation after GRPO (the bridge is restarted on ``<run.out_dir>/hf``). The ``grounding`` task (SegZero-style
System-2 training) needs no bridge and runs no VOS evaluation. Multi-host: launch the same command on every host
with ``--coordinator/--num-processes/--process-id`` or ``OMNIR1_COORDINATOR`` / ``OMNIR1_NUM_PROCESSES`` /
``OMNIR1_PROCESS_ID`` (auto-detected on a TPU pod slice and under SLURM); see
:mod:`omnir1_jax.runtime.distributed`. Only process 0 writes the metrics, plots and summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.experimental import multihost_utils

from omnir1_jax import policy as policy_lib
from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config, parse_seeds
from omnir1_jax.crossomni.batches import read_split
from omnir1_jax.evaluation import evaluate_policy, plot_rewards
from omnir1_jax.learner import Learner, grpo_stage, sft_stage
from omnir1_jax.runtime import distributed, pod
from omnir1_jax.runtime.bridge import open_bridge, resolve_grounder, uses_policy_grounder
from omnir1_jax.runtime.mesh import global_mesh
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks import make_task
from omnir1_jax.train_seeds import run_seeds

STAGES = ("sft", "grpo")


def _has_checkpoint(directory: str) -> bool:
    path = os.path.join(directory, "checkpoints")
    return os.path.isdir(path) and any(d.isdigit() for d in os.listdir(path))


def vos_evaluator(cfg: ExperimentConfig, tokenizer, records, bridge) -> Callable[[Any, str], dict]:
    """``evaluate(policy, tag) -> {"metric": "J&F", "value", ...}`` for the learner: the one two-system evaluator
    (:func:`omnir1_jax.evaluation.evaluate_policy`) on ``records``, written under ``<out_dir>/eval/<tag>/``."""

    def evaluate(policy, tag: str) -> dict:
        return evaluate_policy(
            cfg,
            policy,
            tokenizer,
            records,
            client=bridge.client,
            out_dir=os.path.join(cfg.run.out_dir, "eval"),
            tag=tag,
        )

    return evaluate


def run(
    cfg: ExperimentConfig, *, do_eval: bool = True, stages: Sequence[str] = STAGES, judge=None, save: str | None = None
) -> dict:
    """Run ``stages`` (SFT when ``sft.steps > 0`` or the task is CrossOmni QA, then GRPO) with evaluation around
    GRPO; returns a summary dict (also written to ``<out_dir>/summary.json``)."""
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise ConfigError(f"stages must be a non-empty subset of {STAGES}, got {list(stages)}")
    if cfg.run.seeds:
        return run_seeds(cfg, do_eval=do_eval, stages=stages)
    primary = jax.process_index() == 0
    t_start = time.time()
    out = cfg.run.out_dir
    os.makedirs(out, exist_ok=True)
    tokenizer = policy_lib.build_tokenizer(cfg.model)
    # built directly in its sharding on the run's mesh (global arrays over every process's devices)
    policy = policy_lib.build_policy(
        cfg.model, seed=cfg.run.seed, mesh=global_mesh(cfg.mesh), decode_gather=cfg.mesh.decode_gather
    )
    qa = cfg.data.task == "qa"
    no_bridge = qa or cfg.data.task == "grounding"  # the grounding task's policy grounds by itself
    if qa:
        records = read_split(cfg.data, cfg.data.split)
    else:
        records = read_records(cfg.data, cfg.data.split)
    summary: dict = {"name": cfg.name}

    def export(pol) -> str:  # a whole model directory: weights + the tokenizer / processor files
        return policy_lib.export_policy(
            pol,
            os.path.join(out, "hf"),
            tokenizer=tokenizer,
            assets_from=cfg.model.tokenizer or cfg.model.checkpoint,
            dtype=policy_lib.export_dtype(cfg.model),
        )

    resuming = cfg.run.resume and _has_checkpoint(out)
    # System 2 while training: a "KIND:@policy" grounder is the frozen pretrained checkpoint (Omni-R1 section 4.1)
    bridge = (
        None
        if no_bridge
        else open_bridge(resolve_grounder(cfg.bridge, cfg.model.checkpoint), out, data_roots=[cfg.data.root])
    )
    task = make_task(cfg, tokenizer, bridge=(lambda: bridge.client) if bridge is not None else None, judge=judge)
    # QA accuracy: python -m omnir1_jax.evaluate --split test; grounding: evaluate the export as System 2 (VOS)
    do_eval = do_eval and not no_bridge
    try:
        run_sft = "sft" in stages and (cfg.sft.steps > 0 or qa)  # CrossOmni: sft.steps = 0 means one epoch
        if run_sft and not resuming:
            t0 = time.time()
            sft = Learner(
                cfg, task, sft_stage(cfg, num_records=len(records)), policy=policy, tokenizer=tokenizer, records=records
            )
            try:
                hist = sft.train()
            finally:
                sft.close()
            policy = sft.policy
            summary["sft_seconds"] = time.time() - t0
            summary["sft_final_loss"] = hist[-1]["loss"] if hist else None
        evaluate = None
        if do_eval:
            eval_records = read_records(cfg.data, cfg.run.eval_split)
            evaluate = vos_evaluator(cfg, tokenizer, eval_records, bridge)
        if "grpo" in stages:
            if evaluate is not None and not resuming:
                summary["before"] = evaluate(policy, "before_grpo")
                if primary:
                    print(f"[eval] J&F before GRPO (after SFT): {summary['before']['J&F']:.4f}", flush=True)
            learner = Learner(
                cfg,
                task,
                grpo_stage(cfg, export=False),
                policy=policy,
                tokenizer=tokenizer,
                records=records,
                evaluate=evaluate,
            )
            t0 = time.time()
            try:
                hist = learner.train()
            finally:
                learner.close()
            policy = learner.policy  # the trained (and, on a mesh, sharded) policy: what is evaluated and exported
            summary["grpo_seconds"] = time.time() - t0
            summary["grpo_last"] = hist[-1] if hist else None
            summary["evals"] = learner.evals
            if evaluate is not None:
                if uses_policy_grounder(cfg.bridge):
                    # System 2 = the trained policy (section 4.1): export it and restart the bridge on the export
                    summary["hf"] = export(policy)
                    if jax.process_count() > 1:  # each process's bridge loads what process 0 wrote (shared out_dir)
                        multihost_utils.sync_global_devices("omnir1_jax.train: policy exported")
                    bridge.close()
                    bridge = None  # closed: not closed again if the new one fails to start
                    bridge = open_bridge(resolve_grounder(cfg.bridge, summary["hf"]), out, data_roots=[cfg.data.root])
                    evaluate = vos_evaluator(cfg, tokenizer, eval_records, bridge)
                summary["after"] = evaluate(policy, "after_grpo")
                if primary:
                    print(f"[eval] J&F after GRPO: {summary['after']['J&F']:.4f}", flush=True)
                if "before" in summary and primary:
                    print(
                        f"[eval] J&F before {summary['before']['J&F']:.4f} -> after {summary['after']['J&F']:.4f} "
                        f"(delta {summary['after']['J&F'] - summary['before']['J&F']:+.4f})",
                        flush=True,
                    )
            if primary:
                marks = [(0, summary["before"]["J&F"])] if "before" in summary else []
                marks += list(learner.evals)
                if "after" in summary:
                    marks.append((learner.step, summary["after"]["J&F"]))
                summary["plot"] = plot_rewards(
                    os.path.join(out, "metrics.jsonl"),
                    os.path.join(out, "rewards.png"),
                    weights=task.weights,
                    evals=marks,
                )
        if "hf" not in summary:
            summary["hf"] = export(policy)
        if save:
            policy_lib.export_policy(
                policy,
                save,
                tokenizer=tokenizer,
                assets_from=cfg.model.tokenizer or cfg.model.checkpoint,
                dtype=policy_lib.export_dtype(cfg.model),
            )
    finally:
        task.close()
        if bridge is not None:
            bridge.close()
    summary["total_seconds"] = time.time() - t_start
    if primary:
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(dict(summary.items()), f, indent=1, default=str)
        print(
            f"[done] {json.dumps({k: v for k, v in summary.items() if k not in ('plot', 'grpo_last')}, default=str)}",
            flush=True,
        )
    summary["policy"] = policy
    return summary


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="experiment file defining get_config()")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set grpo.beta=0.001 (repeatable)",
    )
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run (sft, grpo)")
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluations around GRPO")
    ap.add_argument(
        "--seeds",
        help="train these seeds in one program, e.g. 0-4 or 0,2,7 (sets run.seeds; outputs "
        "under <run.out_dir>/seed<k>/)",
    )
    ap.add_argument("--coordinator", help="multi-host: host:port of process 0 (or OMNIR1_COORDINATOR)")
    ap.add_argument("--num-processes", type=int, help="multi-host: number of processes (or OMNIR1_NUM_PROCESSES)")
    ap.add_argument("--process-id", type=int, help="multi-host: this process's index (or OMNIR1_PROCESS_ID)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        if args.seeds:
            cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seeds=parse_seeds(args.seeds)))
        dist = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # every process of a multi-process run: the same config and code, and a lost peer named within seconds
    distributed.initialize(dist, fingerprint=pod.fingerprint(cfg) if dist.multi_process else None)
    with distributed.guard():
        run(cfg, do_eval=not args.no_eval, stages=stages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
