"""Arms x seeds: every figure that says a method learns or beats another, as intervals over seeds.

    python -m omnir1_jax.sweep --config A.py [--config B.py ...] --seeds 0-4 [--set key=value ...] [--out DIR]

Each arm (an experiment file; ``--set`` applies to every arm) trains its seeds in one program
(:mod:`omnir1_jax.train_seeds`) under ``<out>/<arm name>/seed<k>/``. A re-run skips the seeds an earlier run
finished (their ``summary.json`` holds the evaluation after GRPO) and resumes the others from their checkpoints.
Arms that differ only after the warm-up (their reward weights, GRPO learning rate or step count, their name; e.g.
the Table-4 rows) share it: the first such arm trains each seed's SFT warm-up and the others start from a copy of
its final checkpoint (:func:`share_warmup`), so they are paired from the same policy and the sweep spends the
warm-up once per seed. Then it writes, in ``<out>``:

- ``sweep.json``: ``{"metric", "arms": {name: {"seeds": {k: {"before", "after"}}, "mean_after", "ci_after",
  "iqm_after", "iqm_ci_after", "mean_before", "ci_before", "wall_s", "paper"}}, "pairs": [...]}``; ``before`` is
  the metric after SFT, ``after`` after GRPO; a pair compares arm ``b`` with arm ``a`` on their common seeds
  (the mean paired difference with its CI, and the probability of improvement P(b > a) with its CI);
- ``sweep.md``: the same as tables, next to the paper's numbers where the experiment names them
  (``ExperimentConfig.paper``);
- ``sweep.png``: per arm, each seed's reward and evaluation curve (thin) with the mean and a 95 % CI band, and
  the final metric of every arm as an interval plot.

Statistics: :mod:`omnir1_jax.evaluation.metrics.stats` (95 % percentile bootstrap, ``scipy.stats.bootstrap``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config, parse_seeds, seed_config
from omnir1_jax.evaluation.metrics.stats import paired_difference, summarize
from omnir1_jax.evaluation.sweep_figure import sweep_figure
from omnir1_jax.rewards import RewardWeights
from omnir1_jax.train_seeds import SEED_TASKS, _has_checkpoint, run_seeds


def _read(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _value(x):
    """A result's number: per-seed summaries store floats, single-run summaries the evaluator's dicts."""
    return x.get("value") if isinstance(x, dict) else x


def seed_result(arm_dir: str, seed: int) -> dict | None:
    """``{"before", "after", "evals", "steps"}`` of a finished seed (None when it has no result after GRPO)."""
    s = _read(os.path.join(arm_dir, f"seed{seed}", "summary.json"))
    if not s or _value(s.get("after")) is None:
        return None
    return {
        "before": _value(s.get("before")),
        "after": _value(s.get("after")),
        "evals": [tuple(e) for e in s.get("evals", [])],
        "steps": s.get("steps"),
    }


def run_arm(cfg: ExperimentConfig, seeds: Sequence[int], arm_dir: str) -> float:
    """Train the seeds of ``cfg`` that ``arm_dir`` has no result for; returns the seconds it took."""
    todo = [k for k in seeds if seed_result(arm_dir, k) is None]
    if not todo:
        return 0.0
    t0 = time.time()
    base = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out_dir=arm_dir))
    if cfg.data.task not in SEED_TASKS:  # one program per seed
        # lazy: omnir1_jax.train pulls in flax, grain and the bridge client
        from omnir1_jax.train import run

        for k in todo:
            run(seed_config(base, k))
        return time.time() - t0
    started = [k for k in todo if _has_checkpoint(os.path.join(arm_dir, f"seed{k}"))]
    for group in (started, [k for k in todo if k not in started]):  # resume the started ones together
        if group:
            run_seeds(dataclasses.replace(base, run=dataclasses.replace(base.run, seeds=tuple(group))))
    return time.time() - t0


def warmup_key(cfg: ExperimentConfig) -> ExperimentConfig | None:
    """What the SFT warm-up of ``cfg`` depends on: ``cfg`` with the fields only GRPO reads set to fixed values
    (``name``, ``paper``, ``run.out_dir``, ``run.steps``, ``grpo.rewards``, ``grpo.overlap``, ``optim.lr``,
    ``optim.warmup_steps``).
    Two arms with equal keys train the same warm-up, bit for bit, for each seed. None when ``cfg`` has no warm-up
    or does not resume (a copied warm-up is picked up by the learner's resume)."""
    if cfg.sft.steps <= 0 or not cfg.run.resume:
        return None
    return dataclasses.replace(
        cfg,
        name="-",
        paper=(),
        run=dataclasses.replace(cfg.run, out_dir="-", steps=0),
        grpo=dataclasses.replace(cfg.grpo, rewards=RewardWeights(), overlap="off"),
        optim=dataclasses.replace(cfg.optim, lr=1.0, warmup_steps=0),
    )


def _final_step(directory: str) -> int | None:
    path = os.path.join(directory, "checkpoints")
    steps = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    return max(steps) if steps else None


def share_warmup(src_arm: str, dst_arm: str, seeds: Sequence[int], steps: int) -> list[int]:
    """Copy each seed's finished SFT warm-up (``<src_arm>/seed<k>/sft``, checkpointed at ``steps``) to
    ``<dst_arm>/seed<k>/sft`` where ``dst_arm`` has neither a warm-up nor a result for that seed; returns the seeds
    copied. The copy is written next to its place and renamed into it (never half there); it records its source
    in ``shared_from.json``. The learner then resumes the copy at its last step: the arm's GRPO starts from the
    same policy, optimiser state and data position as the source arm's."""
    done = []
    for k in seeds:
        src, dst = os.path.join(src_arm, f"seed{k}", "sft"), os.path.join(dst_arm, f"seed{k}", "sft")
        if _final_step(src) != steps or os.path.exists(dst) or seed_result(dst_arm, k) is not None:
            continue
        tmp = dst + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        with open(os.path.join(tmp, "shared_from.json"), "w") as f:
            json.dump({"arm": os.path.basename(os.path.normpath(src_arm)), "seed": k, "step": steps}, f)
        os.replace(tmp, dst)
        done.append(k)
    return done


def summarize_sweep(arms: dict[str, dict], seeds: Sequence[int], metric: str = "J&F") -> dict:
    """``sweep.json``'s content from ``{name: {"dir", "paper", "wall_s"}}`` (the per-seed results are read from
    each arm's directory)."""
    out: dict[str, Any] = {"metric": metric, "seeds": list(seeds), "arms": {}, "pairs": []}
    for name, arm in arms.items():
        per = {str(k): r for k in seeds if (r := seed_result(arm["dir"], k)) is not None}
        entry: dict[str, Any] = {
            "seeds": {
                k: {"before": r["before"], "after": r["after"], "evals": r["evals"], "steps": r["steps"]}
                for k, r in per.items()
            },
            "wall_s": arm.get("wall_s", 0.0),
            "paper": dict(arm.get("paper", ())),
        }
        for key in ("after", "before"):
            vals = [r[key] for r in per.values() if r[key] is not None]
            if vals:
                s = summarize(vals)
                entry.update(
                    {
                        f"mean_{key}": s["mean"],
                        f"ci_{key}": s["ci"],
                        f"iqm_{key}": s["iqm"],
                        f"iqm_ci_{key}": s["iqm_ci"],
                        f"n_{key}": s["n"],
                    }
                )
        out["arms"][name] = entry
    names = list(out["arms"])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = out["arms"][a]["seeds"], out["arms"][b]["seeds"]
            common = [k for k in sa if k in sb]
            if len(common) >= 2:
                d = paired_difference([sa[k]["after"] for k in common], [sb[k]["after"] for k in common])
                out["pairs"].append({"a": a, "b": b, "seeds": [int(k) for k in common], **d})
    return out


def markdown(sweep: dict) -> str:
    """``sweep.md``: one row per arm (per-seed values, mean [CI], IQM, the paper's number), then the pairs."""
    m = sweep["metric"]
    lines = [
        f"| arm | {m} after SFT, mean [95 % CI] | {m} after GRPO, mean [95 % CI] | IQM [95 % CI] | per seed "
        f"(after GRPO) | paper | wall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in sweep["arms"].items():

        def iv(key):
            if f"mean_{key}" not in a:
                return "-"
            lo, hi = a[f"ci_{key}"]
            return f"{a[f'mean_{key}']:.3f} [{lo:.3f}, {hi:.3f}]"

        per = ", ".join(f"{k}: {v['after']:.3f}" for k, v in a["seeds"].items())
        iqm = (
            f"{a['iqm_after']:.3f} [{a['iqm_ci_after'][0]:.3f}, {a['iqm_ci_after'][1]:.3f}]"
            if "iqm_after" in a
            else "-"
        )
        paper = ", ".join(f"{k} {v}" for k, v in a.get("paper", {}).items()) or "-"
        lines.append(
            f"| {name} | {iv('before')} | {iv('after')} | {iqm} | {per} | {paper} | {a.get('wall_s', 0) / 60:.1f} min |"
        )
    if sweep["pairs"]:
        lines += [
            "",
            f"| b vs a (same seeds) | mean {m} difference b - a [95 % CI] | P(b > a) [95 % CI] |",
            "|---|---|---|",
        ]
        for p in sweep["pairs"]:
            lines.append(
                f"| {p['b']} vs {p['a']} | {p['mean']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}] | "
                f"{p['prob_improvement']:.2f} [{p['prob_improvement_ci'][0]:.2f}, "
                f"{p['prob_improvement_ci'][1]:.2f}] |"
            )
    return "\n".join(lines) + "\n"


def run_sweep(cfgs: Sequence[ExperimentConfig], seeds: Sequence[int], out: str) -> dict:
    """Run every arm's missing seeds, then write ``sweep.json`` / ``sweep.md`` / ``sweep.png`` under ``out``."""
    names = [c.name for c in cfgs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two arms have the same name {names}: give each experiment its own ExperimentConfig.name")
    os.makedirs(out, exist_ok=True)
    arms: dict[str, dict] = {}
    warmups: list[tuple[ExperimentConfig, str]] = []  # (warm-up key, the arm that trains it)
    for cfg in cfgs:
        arm_dir = os.path.join(out, cfg.name)
        wall_path = os.path.join(arm_dir, "wall.json")
        key = warmup_key(cfg)
        if key is not None:
            src = next((d for k, d in warmups if k == key), None)
            if src is None:
                warmups.append((key, arm_dir))
            else:
                shared = share_warmup(src, arm_dir, seeds, cfg.sft.steps)
                if shared:
                    print(
                        f"[sweep] {cfg.name}: the SFT warm-up of seeds {shared} is {os.path.basename(src)}'s "
                        "(the same model, data and warm-up)",
                        flush=True,
                    )
        spent = run_arm(cfg, seeds, arm_dir)
        wall = (_read(wall_path) or {}).get("seconds", 0.0) + spent
        os.makedirs(arm_dir, exist_ok=True)
        with open(wall_path, "w") as f:
            json.dump({"seconds": wall}, f)
        arms[cfg.name] = {"dir": arm_dir, "paper": cfg.paper, "wall_s": wall}
        print(f"[sweep] {cfg.name}: {len(seeds)} seeds done ({wall / 60:.1f} min)", flush=True)
    metric = "accuracy" if cfgs[0].data.task == "qa" else "J&F"
    sweep = summarize_sweep(arms, seeds, metric)
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(sweep, f, indent=1)
    md = markdown(sweep)
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(md)
    sweep_figure(sweep, {n: a["dir"] for n, a in arms.items()}, os.path.join(out, "sweep.png"))
    print(md, flush=True)
    return sweep


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--config", action="append", required=True, help="an arm's experiment file or FILE:VARIANT (repeatable)"
    )
    ap.add_argument("--seeds", required=True, help="the seeds of every arm, e.g. 0-4 or 0,2,7")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field in every arm")
    ap.add_argument("--out", default="runs/sweep", help="sweep directory (default runs/sweep)")
    args = ap.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        cfgs = [load_config(p, args.set) for p in args.config]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_sweep(cfgs, seeds, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
