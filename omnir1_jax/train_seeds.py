"""The training entry point's seed-parallel path: ``python -m omnir1_jax.train --config X.py --seeds 0-4`` (or
``run.seeds`` in the config).

The seeds' SFT warm-ups, their evaluations before GRPO, their GRPO runs and their evaluations after GRPO each
run as one program over the seed axis (:mod:`omnir1_jax.seeds`, :mod:`omnir1_jax.evaluation.seeds`); one bridge
serves every seed. Each seed writes what a single run writes, under ``<run.out_dir>/seed<k>/`` (metrics,
checkpoints, ``eval/``, ``rewards.png``, ``hf/``, ``summary.json``); ``<run.out_dir>/summary.json`` holds the
per-seed table and its statistics (mean and IQM with 95 % bootstrap CIs,
:mod:`omnir1_jax.evaluation.metrics.stats`), next to
the chance level on the synthetic world (a policy that names a random object present, measured once per run
directory). The run prints that table at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

from omnir1_jax.config import ConfigError, ExperimentConfig, seed_config
from omnir1_jax.evaluation import plot_rewards
from omnir1_jax.evaluation.metrics.stats import format_interval, summarize
from omnir1_jax.tasks import make_task

SEED_TASKS = ("vos", "refaid")


def _has_checkpoint(directory: str) -> bool:
    path = os.path.join(directory, "checkpoints")
    return os.path.isdir(path) and any(d.isdigit() for d in os.listdir(path))


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def seed_table(rows: Sequence[dict], metric: str = "J&F", chance: float | None = None) -> str:
    """The per-seed table (Markdown): before (after SFT) and after GRPO per seed, then the mean and IQM with
    their 95 % CIs, and the chance level when known."""
    lines = [f"| seed | {metric} after SFT | {metric} after GRPO | change |", "|---|---|---|---|"]
    for r in rows:
        b, a = r.get("before"), r.get("after")
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        ch = "-" if a is None or b is None else f"{a - b:+.3f}"
        lines.append(f"| {r['seed']} | {fmt(b)} | {fmt(a)} | {ch} |")
    for key, label in (("before", "after SFT"), ("after", "after GRPO")):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            s = summarize(vals)
            lines.append(f"| mean [95 % CI], {label} | | {format_interval(s)} | IQM {s['iqm']:.3f} |")
    if chance is not None:
        lines.append(f"| chance (a random object present) | | {chance:.3f} | |")
    return "\n".join(lines)


def run_seeds(cfg: ExperimentConfig, *, do_eval: bool = True, stages: Sequence[str] = ("sft", "grpo")) -> dict:
    """Train every seed of ``cfg.run.seeds`` in one program (SFT when ``sft.steps > 0``, then GRPO), with the
    evaluations around GRPO; returns (and writes to ``<run.out_dir>/summary.json``) the per-seed results and their
    statistics. A seed's outputs are those of ``run.seed = k`` alone, under ``<run.out_dir>/seed<k>/``."""
    # lazy: the training stack loads only when seeds are trained (sweep imports this module)
    from omnir1_jax import policy as policy_lib
    from omnir1_jax.evaluation.seeds import scripted_level, seed_evaluator
    from omnir1_jax.learner import Learner, grpo_stage, sft_stage
    from omnir1_jax.runtime.bridge import open_bridge, uses_policy_grounder
    from omnir1_jax.runtime.records import read_records
    from omnir1_jax.seeds import SeedGroup

    seeds = tuple(cfg.run.seeds)
    if cfg.data.task not in SEED_TASKS:
        raise ConfigError(
            f"run.seeds: seed-parallel training runs the {', '.join(SEED_TASKS)} tasks, not "
            f"data.task={cfg.data.task!r} (run its seeds one by one with run.seed)"
        )
    if uses_policy_grounder(cfg.bridge):
        raise ConfigError(
            "run.seeds: System 2 = the policy (bridge.grounder '...:@policy') differs per seed; run "
            "such seeds one by one with run.seed"
        )
    t_start = time.time()
    out = cfg.run.out_dir
    os.makedirs(out, exist_ok=True)
    cfgs = [seed_config(cfg, k) for k in seeds]
    tokenizer = policy_lib.build_tokenizer(cfg.model)
    records = read_records(cfg.data, cfg.data.split)
    resuming = [c.run.resume and _has_checkpoint(c.run.out_dir) for c in cfgs]
    if any(resuming) and not all(resuming):
        have = [k for k, r in zip(seeds, resuming) if r]
        raise ConfigError(
            f"run.seeds: seeds {have} have GRPO checkpoints under {out}/seed<k> and the others do "
            f"not; resume all of them or none (run the others in their own run directory)"
        )
    resuming_all = bool(resuming) and all(resuming)
    bridge = open_bridge(cfg.bridge, out, data_roots=[cfg.data.root])
    tasks = [make_task(c, tokenizer, bridge=lambda: bridge.client) for c in cfgs]
    policies = [policy_lib.build_policy(c.model, seed=c.run.seed) for c in cfgs]
    summary: dict = {"name": cfg.name, "seeds": list(seeds)}
    try:
        if "sft" in stages and cfg.sft.steps > 0 and not resuming_all:
            t0 = time.time()
            group = SeedGroup(
                [
                    Learner(
                        c, t, sft_stage(c, num_records=len(records)), policy=p, tokenizer=tokenizer, records=records
                    )
                    for c, t, p in zip(cfgs, tasks, policies)
                ]
            )
            try:
                group.train()
            finally:
                group.close()
            policies = group.policies
            summary["sft_seconds"] = time.time() - t0
        evaluate = None
        if do_eval:
            eval_records = read_records(cfg.data, cfg.run.eval_split)
            evaluate = seed_evaluator(cfgs, tokenizer, eval_records, bridge.client)
            if cfg.data.dataset == "synthetic":
                chance = _read_json(os.path.join(out, "eval", "random_object", "summary.json"))
                if chance is None:
                    chance = scripted_level(cfg, tokenizer, eval_records, bridge.client, os.path.join(out, "eval"))
                summary["chance"] = chance["value"]
        before: list = [None] * len(seeds)
        if "grpo" in stages:
            if evaluate is not None:
                if resuming_all:  # measured by the run that started these seeds
                    before = [
                        _read_json(os.path.join(c.run.out_dir, "eval", "before_grpo", "summary.json")) for c in cfgs
                    ]
                else:
                    before = evaluate(policies, "before_grpo")
            t0 = time.time()
            group = SeedGroup(
                [
                    Learner(c, t, grpo_stage(c, export=False), policy=p, tokenizer=tokenizer, records=records)
                    for c, t, p in zip(cfgs, tasks, policies)
                ],
                evaluate=evaluate,
            )
            try:
                histories = group.train()
            finally:
                group.close()
            policies = group.policies
            summary["grpo_seconds"] = time.time() - t0
            after = evaluate(policies, "after_grpo") if evaluate is not None else [None] * len(seeds)
            rows = []
            for c, l, h, b, a in zip(cfgs, group.learners, histories, before, after):
                marks = ([(0, b["value"])] if b else []) + list(l.evals) + ([(l.step, a["value"])] if a else [])
                plot_rewards(
                    os.path.join(c.run.out_dir, "metrics.jsonl"),
                    os.path.join(c.run.out_dir, "rewards.png"),
                    weights=l.task.weights,
                    evals=marks,
                )
                row = {
                    "seed": c.run.seed,
                    "before": b["value"] if b else None,
                    "after": a["value"] if a else None,
                    "metric": (a or b or {}).get("metric", "J&F"),
                    "evals": list(l.evals),
                    "steps": l.step,
                    "last": h[-1] if h else None,
                }
                rows.append(row)
                with open(os.path.join(c.run.out_dir, "summary.json"), "w") as f:
                    json.dump(row, f, indent=1, default=str)
            summary["per_seed"] = rows
            for key in ("before", "after"):
                vals = [r[key] for r in rows if r[key] is not None]
                if vals:
                    summary[key] = summarize(vals)
        for c, p in zip(cfgs, policies):
            policy_lib.export_policy(
                p,
                os.path.join(c.run.out_dir, "hf"),
                tokenizer=tokenizer,
                assets_from=cfg.model.tokenizer or cfg.model.checkpoint,
                dtype=policy_lib.export_dtype(cfg.model),
            )
    finally:
        for t in tasks:
            t.close()
        bridge.close()
    summary["total_seconds"] = time.time() - t_start
    if "per_seed" in summary:
        summary["table"] = seed_table(summary["per_seed"], summary["per_seed"][0]["metric"], summary.get("chance"))
        print(summary["table"], flush=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(
        f"[done] {len(seeds)} seeds in {summary['total_seconds'] / 60:.1f} min; per seed under {out}/seed<k>/",
        flush=True,
    )
    summary["policies"] = policies
    return summary
