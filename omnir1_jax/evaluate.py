"""Dataset evaluation of the two-system pipeline (docs/design.md §7), resumable.

    python -m omnir1_jax.evaluate --config experiments/<name>.py --split SPLIT [--policy DIR] [--out DIR] \
        [--max-items N] [--bridge ADDRESS] [--refavs-protocol {release,project}] [--visa-rounding] \
        [--pixels N] [--thinking] [--prompt STYLE] [--set key=value ...]

What is evaluated follows ``data.dataset`` of the experiment file:

- ``revos`` / ``synthetic`` (ReVOS layout; split ``valid``): J, F, J&F for referring, reasoning, overall (= mean
  of the two subsets), single- and multi-object expressions;
- ``mevis`` (split ``valid_u``; ``valid`` has no public GT: predictions only, for the evaluation server): J&F;
- ``refavs`` (splits ``test_s``, ``test_u``: J, F, J&F; ``test_n``: S, lower is better), by default with the Ref-AVS
  release's protocol (``--refavs-protocol release``: true-negative J on empty targets, sqrt-pooled S, means over
  batches of 4 expressions; ``project`` = per-expression means, see :mod:`omnir1_jax.evaluation.protocols.refavs`);
- ``crossomni`` (``data.root`` = the JSONL file, or a directory holding ``<split>.jsonl``): multiple-choice
  accuracy per task, single- vs cross-modality and overall.
- ``avhbench`` (``data.root`` = the AVHBench release folder or one question JSON file, see
  :mod:`omnir1_jax.data.avhbench`; any split name): yes/no accuracy of the JUDGE subset per task and overall,
  with precision, recall, F1 and the yes ratio (Omni-R1 Table 6 reports the overall accuracy).
- ``omnibench`` / ``videomme`` / ``mvbench`` / ``dailyomni`` / ``worldsense`` / ``avut`` (``data.root`` = the
  release folder, layouts in :mod:`omnir1_jax.data.suites_omni` / :mod:`omnir1_jax.data.suites_ood`;
  any split name), or ``suites`` (several: ``data.suites``, each in ``data.root/<name>``):
  multiple-choice accuracy per task, group and overall under ``<out>/<suite>/``, and the paper's row
  (Omni-R1 Table 3 / 7, CrossOmni Table 10) in ``<out>/summary.json`` / ``summary.md``
  (:mod:`omnir1_jax.evaluation.suites`). ``--pixels N`` sets System 1's per-frame pixel budget
  (``data.s1_max_pixels``; Table 7: 128*28*28 or 256*28*28), ``--thinking`` the thinking prompt
  (``data.thinking``), ``--prompt`` the instruction (``data.qa_prompt``; CrossOmni too).

System 2 is the bridge of ``bridge.*`` (or ``--bridge``); ``bridge.grounder = "qwen2_5_omni:@policy"`` starts the
bridge's Qwen2.5-Omni grounder on the evaluated policy itself (``--policy DIR``, else ``model.checkpoint``):
Omni-R1 section 4.1, "Omni-R1 is serving as both System 1 and System 2".

Segmentation datasets run System 1 on at most ``data.max_frames`` (24) sampled frames, map its keyframes to the
full video, and let the bridge segment every frame of the video (the datasets' protocol). Written under
``--out`` (default ``<run.out_dir>/eval/<dataset>_<split>``):

- ``results.jsonl``: one line per expression / question, appended and flushed as each finishes (per-frame J
  and F included), so an interrupted evaluation **resumes** where it stopped (``--no-resume`` starts over);
- ``summary.json`` and ``summary.md``: the table, rebuilt from ``results.jsonl`` in the dataset's order, so a
  resumed evaluation gives exactly the table of an uninterrupted one; both state the protocol used
  (``"protocol"``; ReVOS / MeViS: ``exact`` means or ``visa_rounded`` with ``--visa-rounding``, i.e. each
  expression's J and F rounded to 0.01 percentage points first, as VISA's ReVOS script does; Ref-AVS rows of
  ``results.jsonl`` name theirs too, and resuming with another Ref-AVS protocol is refused);
- ``predictions/<video>/<exp_id>/<frame>.png``: one 8-bit mask per frame (0 / 255) at the original
  resolution (DAVIS-style directory layout, as the ReVOS / MeViS servers take it);
- ``overlays/<video>_<exp_id>.png``: prediction (green) against the ground truth (magenta) on labelled frames
  of the first ``--overlays`` (3) expressions evaluated.

The evaluation itself is :mod:`omnir1_jax.evaluation` (the same code training and ``infer`` use); this module
is its command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config
from omnir1_jax.crossomni.batches import read_split
from omnir1_jax.data.avhbench import read_avhbench
from omnir1_jax.evaluation.loop import Predictor, evaluate_qa, evaluate_segmentation, evaluate_yes_no
from omnir1_jax.evaluation.suites import evaluate_suites
from omnir1_jax.evaluation.two_system import TwoSystemPredictor, avhbench_answers, mcq_answers, qa_answers
from omnir1_jax.runtime.bridge import open_bridge, resolve_grounder
from omnir1_jax.runtime.records import read_records

# The multiple-choice suites (omnir1_jax.data.suites.SUITE_NAMES; spelled here so --help needs no data import)
SUITE_NAMES = ("omnibench", "videomme", "mvbench", "dailyomni", "worldsense", "avut")

VOS_DATASETS = ("revos", "mevis", "synthetic")


# ----------------------------------------------------------------------------------------------- driver
def evaluate(
    cfg: ExperimentConfig,
    split: str,
    *,
    out_dir: str | None = None,
    policy=None,
    tokenizer=None,
    client=None,
    predictor: Predictor | None = None,
    resume: bool = True,
    max_items: int | None = None,
    progress: bool = True,
    overlays: int = 3,
    refavs_protocol: str = "release",
    visa_rounding: bool = False,
) -> dict[str, Any]:
    """Evaluate the experiment's dataset on ``split`` (see the module docstring). Builds what is not passed:
    the tokenizer and policy from ``cfg.model``, the bridge from ``cfg.bridge`` (closed again at the end).
    ``predictor`` replaces the two-system pipeline (segmentation datasets); ``refavs_protocol`` and
    ``visa_rounding`` choose the segmentation protocol (module docstring)."""
    # lazy: the policy (flax) loads only when this evaluation builds one
    from omnir1_jax import policy as policy_lib

    ds = cfg.data.dataset
    out_dir = out_dir or os.path.join(cfg.run.out_dir, "eval", f"{ds}_{split}")
    os.makedirs(out_dir, exist_ok=True)

    def system1():
        tok = tokenizer or policy_lib.build_tokenizer(cfg.model)
        if policy is None:
            return policy_lib.build_policy(cfg.model, seed=cfg.run.seed, trainable=False), tok
        return policy, tok

    if ds in SUITE_NAMES + ("suites",):
        names = cfg.data.suites if ds == "suites" else (ds,)
        unknown = [n for n in names if n not in SUITE_NAMES]
        if unknown:
            raise ConfigError(f"data.suites: unknown {unknown}; known: {SUITE_NAMES}")
        if cfg.data.qa_prompt == "table17":
            raise ConfigError("data.qa_prompt='table17' is CrossOmni's; the suites take auto, plain, default, cot")
        sources = [(n, os.path.join(cfg.data.root, n) if ds == "suites" else cfg.data.root) for n in names]
        pol, tok = system1()
        return evaluate_suites(
            sources,
            lambda recs: mcq_answers(cfg, pol, tok, recs),
            out_dir,
            resume=resume,
            max_items=max_items,
            progress=progress,
        )
    if ds in ("crossomni", "avhbench"):
        if ds == "crossomni":
            records, fn, run = read_split(cfg.data, split), qa_answers, evaluate_qa
        else:
            records, fn, run = read_avhbench(cfg.data.root), avhbench_answers, evaluate_yes_no
        pol, tok = system1()
        return run(
            records,
            lambda recs: fn(cfg, pol, tok, recs),
            out_dir,
            resume=resume,
            max_items=max_items,
            progress=progress,
        )
    if ds not in VOS_DATASETS + ("refavs",):
        raise ConfigError(
            f"data.dataset={ds!r} cannot be evaluated (use "
            f"{VOS_DATASETS + ('refavs', 'crossomni', 'avhbench', 'suites') + SUITE_NAMES})"
        )
    records = read_records(cfg.data, split)
    kind = "refavs" if ds == "refavs" else "vos"
    bridge = None
    if predictor is None:
        pol, tok = system1()
        if client is None:
            # "KIND:@policy": System 2 is the evaluated policy itself (model.checkpoint, set by --policy)
            bridge = open_bridge(
                resolve_grounder(cfg.bridge, cfg.model.checkpoint), out_dir, data_roots=[cfg.data.root]
            )
            client = bridge.client
        predictor = TwoSystemPredictor(cfg, pol, tok, client)
    try:
        return evaluate_segmentation(
            records,
            predictor,
            out_dir,
            kind=kind,
            resume=resume,
            max_items=max_items,
            progress=progress,
            overlays=overlays,
            refavs_protocol=refavs_protocol,
            visa_rounding=visa_rounding,
        )
    finally:
        if bridge is not None:
            bridge.close()


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m omnir1_jax.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="experiment file defining get_config(), or FILE:VARIANT")
    ap.add_argument(
        "--split",
        default=None,
        help="valid (ReVOS), valid_u (MeViS), test_s/test_u/test_n "
        "(Ref-AVS), or a CrossOmni split; optional for the multiple-choice suites (default test)",
    )
    ap.add_argument(
        "--policy",
        default=None,
        help="System 1 checkpoint (local HF dir); default model.checkpoint; "
        "also System 2 when bridge.grounder is KIND:@policy",
    )
    ap.add_argument("--out", default=None, help="output directory (default <run.out_dir>/eval/<dataset>_<split>)")
    ap.add_argument("--max-items", type=int, default=None, help="evaluate at most this many new items")
    ap.add_argument("--bridge", default=None, help="connect to this bridge address instead of bridge.*")
    ap.add_argument("--no-resume", action="store_true", help="discard earlier results in --out")
    ap.add_argument("--overlays", type=int, default=3, help="overlay PNGs of the first N expressions evaluated")
    ap.add_argument(
        "--refavs-protocol",
        choices=("release", "project"),
        default="release",
        help="Ref-AVS scoring: the Ref-AVS release's (default; comparable with published tables) or ours",
    )
    ap.add_argument(
        "--visa-rounding",
        action="store_true",
        help="ReVOS / MeViS: round each expression's J and F to 0.01 pp before averaging (VISA)",
    )
    ap.add_argument(
        "--pixels",
        type=int,
        default=None,
        metavar="N",
        help="System 1's per-frame pixel budget (data.s1_max_pixels; Omni-R1 Table 7: 100352 = 128*28*28, "
        "200704 = 256*28*28)",
    )
    ap.add_argument("--thinking", action="store_true", help="add Omni-R1's thinking prompt (data.thinking=True)")
    ap.add_argument(
        "--prompt",
        choices=("auto", "table17", "default", "cot", "plain"),
        default=None,
        help="multiple-choice instruction (data.qa_prompt)",
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.pixels is not None:
        overrides.append(f"data.s1_max_pixels={args.pixels}")
    if args.thinking:
        overrides.append("data.thinking=True")
    if args.prompt:
        overrides.append(f"data.qa_prompt={args.prompt!r}")
    if args.policy:
        overrides.append(f"model.checkpoint={args.policy!r}")
    if args.bridge:
        overrides += ["bridge.start=False", f"bridge.addresses=({args.bridge!r},)"]
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    split = args.split
    if split is None:
        if cfg.data.dataset not in SUITE_NAMES + ("suites",):
            print(f"error: --split is required for data.dataset={cfg.data.dataset!r}", file=sys.stderr)
            return 2
        split = "test"  # the suites have one evaluation set; the name only names the output folder
    result = evaluate(
        cfg,
        split,
        out_dir=args.out,
        resume=not args.no_resume,
        max_items=args.max_items,
        overlays=args.overlays,
        refavs_protocol=args.refavs_protocol,
        visa_rounding=args.visa_rounding,
    )
    print(result["markdown"])
    print(
        f"[eval] {result['done']}/{result['total']} done; summary in "
        f"{args.out or os.path.join(cfg.run.out_dir, 'eval', f'{cfg.data.dataset}_{split}')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
