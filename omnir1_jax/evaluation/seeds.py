"""The two-system evaluation of several seeds' policies at once: System 1's greedy answers for every seed come
from one vmapped program per evaluation batch (the seeds share the held-out prompts), then each seed's answers
are segmented and scored exactly as :func:`~omnir1_jax.evaluation.loop.evaluate_policy` scores one policy
(it is called per seed with those answers), into each seed's own ``eval/<tag>/``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from omnir1_jax.data import build_pipeline
from omnir1_jax.evaluation.loop import evaluate_policy, record_kind
from omnir1_jax.runtime.records import pipeline_config
from omnir1_jax.tasks.synthetic_targets import load_oracle, synthetic_target


def seed_answers(
    cfg, policies: Sequence[Any], tokenizer, records: Sequence[Any], *, max_new_tokens: int | None = None
) -> list[dict[tuple[str, str], str]]:
    """Every seed's greedy System-1 answer to every record: ``[{(video_id, exp_id): text} per seed]``; the
    prompts are built once (the evaluation pipeline of ``cfg``, as :class:`TwoSystemPredictor` builds them)."""
    # lazy: flax and the model code load only when seeds are evaluated
    import flax.nnx as nnx

    from omnir1_jax import policy as policy_lib
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.runtime.seed_axis import sample_seeds, stack

    answers: list[dict[tuple[str, str], str]] = [{} for _ in policies]
    if not records:
        return answers
    split = [nnx.split(p) for p in policies]
    graphdef, states = split[0][0], stack([s for _, s in split])
    eos, pad = policy_lib.eos_ids_of(tokenizer), policy_lib.pad_id_of(tokenizer)
    keys = jax.numpy.stack([jax.random.key(0)] * len(policies))
    pcfg = pipeline_config(cfg.data, train=False, seed=cfg.run.seed, num_epochs=1, num_keyframes=cfg.grpo.num_keyframes)
    for batch in build_pipeline(list(records), tokenizer, pcfg):
        inputs = as_model_inputs(policies[0].config, batch["model_inputs"])
        out = sample_seeds(
            states,
            inputs,
            keys,
            graphdef=graphdef,
            shared_inputs=True,
            max_new_tokens=int(max_new_tokens or cfg.grpo.max_new_tokens),
            num_samples=1,
            greedy=True,
            eos=tuple(eos),
            pad_token_id=int(pad),
        )
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        for k in range(len(policies)):
            texts = policy_lib.decode_completions(tokenizer, tokens[k], lengths[k], eos)
            answers[k].update(zip(zip(batch["video_id"], batch["exp_id"]), texts))
    return answers


def seed_evaluator(cfgs: Sequence[Any], tokenizer, records: Sequence[Any], client) -> Callable[[list, str], list]:
    """``evaluate(policies, tag) -> [result per seed]`` for :class:`omnir1_jax.seeds.SeedGroup`: the segmentation
    evaluation of ``records`` (the first ``run.eval_max_expressions`` with masks, as the one-policy evaluator
    takes them) under each seed's ``<run.out_dir>/eval/<tag>/``; ``cfgs[k]`` is seed k's config."""
    first = cfgs[0]
    if first.data.task == "vos_interactive" and first.grpo.max_turns > 1:
        raise ValueError("the seed-parallel evaluation answers in one turn; evaluate multi-turn seeds one by one")
    kind = record_kind(first, records)
    if kind in ("qa", "yesno"):
        raise ValueError(f"the seed-parallel evaluation scores segmentation records, not {kind}")
    limit = first.run.eval_max_expressions or None
    recs = [r for r in records if kind == "refavs" or r.masks is not None][:limit]

    def evaluate(policies: list, tag: str) -> list:
        answers = seed_answers(first, policies, tokenizer, recs)
        results = []
        for cfg, got in zip(cfgs, answers):
            texts = lambda rs, got=got: [got[(r.video_id, r.exp_id)] for r in rs]
            results.append(
                evaluate_policy(
                    cfg,
                    None,
                    tokenizer,
                    recs,
                    client=client,
                    tag=tag,
                    texts=texts,
                    out_dir=os.path.join(cfg.run.out_dir, "eval"),
                )
            )
        return results

    return evaluate


def scripted_level(
    cfg, tokenizer, records: Sequence[Any], client, out_dir: str, *, mode: str = "random_object", seed: int = 0
) -> dict:
    """The evaluation of scripted answers on the synthetic world, a reference level for the learned policies:
    ``mode = "random_object"`` names an object present in the clip drawn at random (target or not) on the frames
    where it is visible (the chance level of a policy that does not read the query), ``"oracle"`` names the
    target (the ceiling of the two-system pipeline). Written to ``<out_dir>/<mode>/``; returns
    :func:`evaluate_policy`'s result."""
    limit = cfg.run.eval_max_expressions or None
    recs = [r for r in records if r.masks is not None][:limit]
    by_id = {(r.video_id, r.exp_id): r for r in recs}
    oracle, rng = load_oracle(cfg.data.root), np.random.default_rng(seed)
    answers: dict[tuple[str, str], str] = {}
    pcfg = pipeline_config(cfg.data, train=False, seed=cfg.run.seed, num_epochs=1, num_keyframes=cfg.grpo.num_keyframes)
    for batch in build_pipeline(recs, tokenizer, pcfg):
        for b, key in enumerate(zip(batch["video_id"], batch["exp_id"])):
            t = int(batch["num_frames"][b])
            positions = [int(p) for p in batch["frame_indices"][b][:t]]
            rec = by_id[key]
            answers[key] = synthetic_target(
                oracle[rec.video_id], positions, rec.obj_ids, rng, mode=mode, fps=batch["fps_s1"]
            )
    return evaluate_policy(
        cfg,
        None,
        tokenizer,
        recs,
        client=client,
        out_dir=out_dir,
        tag=mode,
        texts=lambda rs: [answers[(r.video_id, r.exp_id)] for r in rs],
        progress=False,
    )
