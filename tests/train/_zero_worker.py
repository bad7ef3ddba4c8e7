"""Subprocess of test_shard_optimizer.py: two GRPO updates of the one learner with ``mesh.shard_optimizer`` and
``mesh.update_gather`` off and on, on 8 fake CPU devices (mesh data 2 x fsdp 2 x tensor 2), the same fixed batch;
then a checkpoint round trip of the sharded run. Prints one JSON line.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=8 python _zero_worker.py WORLD OUT
"""

import dataclasses
import json
import sys

import numpy as np

PROMPTS, GROUP = 2, 4


def held(x) -> float:
    """Fraction of global array ``x`` that one device holds."""
    return float(np.prod(x.addressable_shards[0].data.shape)) / x.size


def spec_axes(x) -> list:
    """The mesh axes named anywhere in ``x``'s PartitionSpec, sorted."""
    out = set()
    for ax in x.sharding.spec:
        out.update(a for a in (ax if isinstance(ax, tuple) else (ax,)) if a is not None)
    return sorted(out)


def main(world: str, out_dir: str) -> None:
    import jax
    from flax import nnx

    from omnir1_jax.config import MeshSpec
    from omnir1_jax.data import build_pipeline
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.runtime.records import pipeline_config, read_records
    from omnir1_jax.tasks.base import Scored
    from tests.train._tiny import make_learner, perturb, tiny_config

    out = {}
    for arm in ("off", "on"):
        cfg = tiny_config(world, f"{out_dir}/{arm}", batch_size=PROMPTS, steps=2)
        cfg = dataclasses.replace(
            cfg,
            grpo=dataclasses.replace(cfg.grpo, group_size=GROUP),
            mesh=MeshSpec(
                data=2, fsdp=2, tensor=2, decode_gather=True, shard_optimizer=arm == "on", update_gather=arm == "on"
            ),
        )
        records = read_records(cfg.data)
        tr = make_learner(cfg, None, records=records)
        perturb(tr.policy)
        pcfg = pipeline_config(cfg.data, train=False, seed=0, batch_size=PROMPTS)
        batch = next(iter(build_pipeline(sorted(records, key=lambda r: r.key)[:PROMPTS], tr.tokenizer, pcfg)))
        prompt = as_model_inputs(tr.policy.config, batch["model_inputs"])
        rows = PROMPTS * GROUP
        lengths = np.array([5 + r % 6 for r in range(rows)], np.int32)
        tokens = np.zeros((rows, 16), np.int32)
        for r in range(rows):
            tokens[r, : lengths[r]] = np.random.default_rng(r).integers(20, 500, lengths[r])
        rewards = np.array([np.random.default_rng(100 + r).uniform(0, 3) for r in range(rows)], np.float32)
        ro = tr.assemble(prompt, tokens, lengths, [""] * rows, Scored(rewards, {}, {}))

        def layout():
            emb_p = tr.policy.language_model.embed_tokens.weight[...]
            paths = [
                (jax.tree_util.keystr(k), x)
                for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(tr.optimizer))
                if "embed_tokens" in jax.tree_util.keystr(k) and "mu" in jax.tree_util.keystr(k)
            ]
            emb_mu = paths[0][1]
            return {
                "param_axes": spec_axes(emb_p),
                "param_held": held(emb_p),
                "mu_axes": spec_axes(emb_mu),
                "mu_held": held(emb_mu),
            }

        before = layout()
        losses = [tr.update(ro)["loss"] for _ in range(2)]
        after = layout()
        params = {
            jax.tree_util.keystr(k): np.asarray(x).tolist()
            for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(tr.policy, nnx.Param))
        }
        moments = {
            jax.tree_util.keystr(k): np.asarray(x).tolist()
            for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(tr.optimizer))
        }
        res = dict(losses=losses, before=before, after=after)
        if arm == "on":  # a checkpoint of the sharded state restores values and layout
            tr.step = 2
            tr.save()
            perturb(tr.policy, seed=3)
            nnx.update(tr.optimizer, jax.tree.map(lambda x: x * 0 + 1, nnx.state(tr.optimizer)))
            res["restored"] = tr.restore()
            res["restored_layout"] = layout()
            res["restored_params_equal"] = all(
                np.array_equal(np.asarray(x), np.asarray(params[jax.tree_util.keystr(k)]))
                for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(tr.policy, nnx.Param))
            )
            res["restored_moments_equal"] = all(
                np.array_equal(np.asarray(x), np.asarray(moments[jax.tree_util.keystr(k)]))
                for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(tr.optimizer))
            )
        out[arm] = res
        out[arm + "_params"] = params
        out[arm + "_moments"] = moments
        tr.close()
    worst = lambda a, b: max(
        float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)))) for k in a
    )
    print(
        json.dumps(
            {
                "off": out["off"],
                "on": out["on"],
                "param_diff": worst(out["off_params"], out["on_params"]),
                "moment_diff": worst(out["off_moments"], out["on_moments"]),
                "mesh": {"data": 2, "fsdp": 2, "tensor": 2},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
