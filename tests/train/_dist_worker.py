"""Subprocess of test_distributed.py: two GRPO updates of the one learner on a fixed global batch.

Joins the process group described by the OMNIR1_* environment (or runs alone) with a mesh whose ``fsdp`` axis
is every device of the run (2 processes x 4 devices: fsdp = 8 spans both processes), builds the ``Learner`` on
the tiny policy, takes a fixed global batch (prompts from the synthetic world in WORLD, completions and rewards
drawn from seeds of their global row index) of which each process prepares only its own prompts (its share; the
shares differ in clip length, so their token lengths and patch counts differ and must be padded and moved into
one global batch), runs ``learner.update`` twice (one jit program over the global
mesh), measures which fraction of every fsdp-sharded weight this process holds, writes a checkpoint, scrambles
the policy and restores it. Prints one JSON line.

With ``ZERO_TEST=1`` the mesh is data 2 x fsdp (devices / 2) and ``mesh.shard_optimizer`` is on.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=4 OMNIR1_COORDINATOR=... python _dist_worker.py WORLD OUT
"""

import dataclasses
import json
import os
import sys

import numpy as np

from omnir1_jax.runtime import distributed
from omnir1_jax.runtime.records import pipeline_config, read_records

PROMPTS, GROUP = 2, 4  # the global batch: 2 prompts x 4 samples


def held_fraction(x) -> float:
    """Fraction of the elements of global array ``x`` held by this process's devices (each shard once)."""
    seen = {}
    for s in x.addressable_shards:
        key = tuple((sl.start, sl.stop) for sl in s.index)
        seen[key] = int(np.prod(s.data.shape))
    return sum(seen.values()) / x.size


def main(world: str, out_dir: str) -> None:
    spec = distributed.initialize(distributed.resolve())
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from omnir1_jax.config import MeshSpec
    from omnir1_jax.data import build_pipeline
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.tasks.base import Scored
    from tests.train._tiny import make_learner, perturb, tiny_config

    cfg = tiny_config(world, out_dir, batch_size=PROMPTS, steps=2)
    cfg = dataclasses.replace(
        cfg,
        grpo=dataclasses.replace(cfg.grpo, group_size=GROUP),
        # ZERO_TEST=1: data 2 x fsdp (devices / 2) with the AdamW moments split over data too (rl.zero)
        mesh=(
            MeshSpec(data=2, fsdp=jax.device_count() // 2, tensor=1, shard_optimizer=True)
            if os.environ.get("ZERO_TEST") == "1"
            else MeshSpec(data=1, fsdp=jax.device_count(), tensor=1)
        ),
        data=dataclasses.replace(cfg.data, max_frames=12, pad_to_multiple=1),
    )  # clips of 8 and 12 frames
    records = read_records(cfg.data)
    tr = make_learner(cfg, None, records=records)
    perturb(tr.policy)  # away from the reference, so the KL term and its gradient are not zero

    by_length = sorted(records, key=lambda r: (len(r.frame_paths), r.key))
    batch = [by_length[0], by_length[-1]]  # the global batch: the shortest clip and the longest
    lo, hi = distributed.my_prompts(PROMPTS)
    pcfg = pipeline_config(cfg.data, train=False, seed=0, batch_size=hi - lo)
    share = next(iter(build_pipeline(batch[lo:hi], tr.tokenizer, pcfg)))
    prompt = as_model_inputs(tr.policy.config, share["model_inputs"])
    rows = range(PROMPTS * GROUP)  # global row indices
    lengths = np.array([5 + row % 6 for row in rows], np.int32)
    tokens = np.zeros((len(rows), 16), np.int32)
    for i, row in enumerate(rows):
        tokens[i, : lengths[i]] = np.random.default_rng(row).integers(20, 500, lengths[i])
    rewards = np.array([np.random.default_rng(100 + row).uniform(0, 3) for row in rows], np.float32)
    ro = tr.assemble(prompt, tokens, lengths, [""] * len(rows), Scored(rewards, {}, {}))
    losses = [tr.update(ro)["loss"] for _ in range(2)]

    params = nnx.state(tr.policy, nnx.Param)
    checksum_fn = jax.jit(
        lambda t: sum(
            jnp.sum(x.astype(jnp.float64) if jax.config.jax_enable_x64 else x.astype(jnp.float32))
            for x in jax.tree.leaves(t)
        )
    )

    def checksum():
        return float(checksum_fn(nnx.state(tr.policy, nnx.Param)))

    sharded = {
        jax.tree_util.keystr(k): held_fraction(x)
        for k, x in jax.tree_util.tree_leaves_with_path(params)
        if "fsdp" in jax.tree.leaves(tuple(x.sharding.spec), is_leaf=lambda a: a is None)
        or any(isinstance(a, tuple) and "fsdp" in a for a in x.sharding.spec)
    }
    trained = checksum()
    tr.step = 2
    tr.save()
    perturb(tr.policy, seed=3)
    scrambled = checksum()
    restored = tr.restore()
    print(
        json.dumps(
            {
                "process": jax.process_index(),
                "processes": jax.process_count(),
                "devices": jax.device_count(),
                "local_devices": jax.local_device_count(),
                "primary": distributed.is_primary(),
                "multi": spec.multi_process,
                "losses": losses,
                "checksum": trained,
                "scrambled_differs": scrambled != trained,
                "restored": restored,
                "restored_checksum": checksum(),
                "restored_step": tr.step,
                "fsdp_weights": len(sharded),
                "held": sorted({round(v, 6) for v in sharded.values()}),
                "mesh": dict(tr.mesh.shape),
                "prompt_frames": [int(x) for x in share["num_frames"]],
                "prompt_tokens": int(prompt.input_ids.shape[1]),
            }
        ),
        flush=True,
    )
    tr.close()
    if spec.multi_process:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
