"""One-way against bidirectional System 1 <-> System 2: the same SFT start, the same GRPO budget, 1 turn vs K.

    python -m omnir1_jax.compare_turns --config experiments/synthetic_cpu_interactive.py [--set key=value ...]

With ``--seeds 0-4`` the comparison runs once per seed (one after another: multi-turn rollouts do not run
seed-parallel), each under ``<run.out_dir>/seed<k>``, and ``<run.out_dir>/compare.json`` adds the statistics over
seeds (:mod:`omnir1_jax.evaluation.metrics.stats`): the paired difference K turns - 1 turn and the revision effect
(the K-turn arm's final answers - its first answers), each with its mean and 95 % bootstrap CI, and P(K turns > 1 turn).

Runs the experiment's SFT once (``task = vos_interactive`` with K turns: every answer of a K-turn conversation
is a format target, each after System 2's real feedback on the previous one), then two GRPO runs from
that same policy with the same seed, data order and step budget: one with ``grpo.max_turns = 1`` (today's
one-way pipeline) and one with the experiment's ``grpo.max_turns = K`` (System 2's boxes fed back, System 1 may
revise). Each is evaluated on ``run.eval_split`` with its own number of turns (the K-turn evaluation also
reports the J&F of its first answers and the fraction revised). Prints both J&F and their difference and writes
``<run.out_dir>/compare.json``; the runs live under ``<run.out_dir>/turns_1`` and ``<run.out_dir>/turns_K``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config, parse_seeds, seed_config
from omnir1_jax.evaluation import evaluate_policy
from omnir1_jax.evaluation.metrics.stats import paired_difference, summarize
from omnir1_jax.runtime.bridge import open_bridge, resolve_grounder
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks import make_task


def compare(cfg: ExperimentConfig) -> dict:
    """Run the comparison of ``cfg`` (see the module docstring); returns what ``compare.json`` holds."""
    # lazy: flax and the learner load only when a comparison runs (not for --help)
    from flax import nnx

    from omnir1_jax import policy as policy_lib
    from omnir1_jax.learner import Learner, grpo_stage, sft_stage

    if cfg.data.task != "vos_interactive" or cfg.grpo.max_turns < 2:
        raise ConfigError(
            "compare_turns needs data.task='vos_interactive' and grpo.max_turns >= 2, got "
            f"{cfg.data.task!r} and {cfg.grpo.max_turns}"
        )
    t_start = time.time()
    out = cfg.run.out_dir
    os.makedirs(out, exist_ok=True)
    tokenizer = policy_lib.build_tokenizer(cfg.model)
    policy = policy_lib.build_policy(cfg.model, seed=cfg.run.seed)
    records = read_records(cfg.data, cfg.data.split)
    eval_records = read_records(cfg.data, cfg.run.eval_split)
    bridge = open_bridge(resolve_grounder(cfg.bridge, cfg.model.checkpoint), out, data_roots=[cfg.data.root])
    result: dict = {"name": cfg.name, "max_turns": cfg.grpo.max_turns, "steps": cfg.run.steps}
    try:
        if cfg.sft.steps > 0:  # K-turn targets (the format after a feedback turn too), shared by both arms
            sft = Learner(
                cfg,
                make_task(cfg, tokenizer, bridge=lambda: bridge.client),
                sft_stage(cfg),
                policy=policy,
                tokenizer=tokenizer,
                records=records,
            )
            try:
                sft.train()
            finally:
                sft.close()
            policy = sft.policy
        start = nnx.state(policy)
        for turns in (1, cfg.grpo.max_turns):
            arm = dataclasses.replace(
                cfg,
                grpo=dataclasses.replace(cfg.grpo, max_turns=turns),
                run=dataclasses.replace(cfg.run, out_dir=os.path.join(out, f"turns_{turns}"), resume=False),
            )
            pol = nnx.clone(policy)
            nnx.update(pol, start)  # both arms start from the same SFT policy
            t0 = time.time()
            learner = Learner(
                arm,
                make_task(arm, tokenizer, bridge=lambda: bridge.client),
                grpo_stage(arm, export=False),
                policy=pol,
                tokenizer=tokenizer,
                records=records,
            )
            try:
                learner.train()
            finally:
                learner.close()
            ev = evaluate_policy(
                arm,
                learner.policy,
                tokenizer,
                eval_records,
                client=bridge.client,
                out_dir=os.path.join(arm.run.out_dir, "eval"),
                tag="after_grpo",
            )
            result[f"turns_{turns}"] = {
                "J&F": ev["J&F"],
                "valid_answers": ev.get("valid_answers"),
                "J&F_by_turns": ev.get("J&F_by_turns"),
                "revised_fraction": ev.get("revised_fraction"),
                "grpo_seconds": time.time() - t0,
            }
            print(
                f"[compare] {turns} turn{'s' if turns > 1 else ''}: J&F after GRPO {ev['J&F']:.4f}"
                + (
                    f" (first answers {ev['J&F_by_turns']['1']:.4f}, revised {ev['revised_fraction']:.2f})"
                    if ev.get("J&F_by_turns")
                    else ""
                ),
                flush=True,
            )
    finally:
        bridge.close()
    k = cfg.grpo.max_turns
    result["gap"] = result[f"turns_{k}"]["J&F"] - result["turns_1"]["J&F"]
    result["seconds"] = time.time() - t_start
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"[compare] J&F: 1 turn {result['turns_1']['J&F']:.4f}, {k} turns {result[f'turns_{k}']['J&F']:.4f}, "
        f"gap {result['gap']:+.4f} ({result['seconds'] / 60:.1f} min)",
        flush=True,
    )
    return result


def compare_seeds(cfg: ExperimentConfig, seeds) -> dict:
    """:func:`compare` for each seed (``<run.out_dir>/seed<k>``, a finished seed's ``compare.json`` is reused),
    then the statistics over seeds, written to ``<run.out_dir>/compare.json``."""
    k = cfg.grpo.max_turns
    per: dict[str, dict] = {}
    for seed in seeds:
        sc = seed_config(cfg, seed)
        done = os.path.join(sc.run.out_dir, "compare.json")
        if os.path.exists(done):
            with open(done) as f:
                per[str(seed)] = json.load(f)
            continue
        per[str(seed)] = compare(sc)
    one = [per[str(s)]["turns_1"]["J&F"] for s in seeds]
    many = [per[str(s)][f"turns_{k}"]["J&F"] for s in seeds]
    first = [per[str(s)][f"turns_{k}"]["J&F_by_turns"]["1"] for s in seeds]
    result = {
        "name": cfg.name,
        "max_turns": k,
        "seeds": list(seeds),
        "per_seed": {
            s: {
                "turns_1": per[s]["turns_1"]["J&F"],
                f"turns_{k}": per[s][f"turns_{k}"]["J&F"],
                "first_answers": per[s][f"turns_{k}"]["J&F_by_turns"]["1"],
                "gap": per[s]["gap"],
            }
            for s in per
        },
        "turns_1": summarize(one),
        f"turns_{k}": summarize(many),
        "gap": paired_difference(one, many),
        "revision": paired_difference(first, many),
    }
    os.makedirs(cfg.run.out_dir, exist_ok=True)
    with open(os.path.join(cfg.run.out_dir, "compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    g, r = result["gap"], result["revision"]
    print(
        f"[compare] {len(seeds)} seeds: {k} turns - 1 turn = {g['mean']:+.4f} [{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}], "
        f"P({k} turns better) {g['prob_improvement']:.2f}; revision (final - first answers) {r['mean']:+.4f} "
        f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]",
        flush=True,
    )
    return result


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.compare_turns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", required=True, help="experiment file defining get_config(), or FILE:VARIANT")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--seeds", help="compare on these seeds, one after another (e.g. 0-4), with statistics")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        seeds = None
        if args.seeds:
            seeds = parse_seeds(args.seeds)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if seeds:
        compare_seeds(cfg, seeds)
    else:
        compare(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
