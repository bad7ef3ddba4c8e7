"""What the one learner leaves behind: the Hugging Face export of the trained policy, and the evaluation after
GRPO on a multi-device mesh reading the trained parameters (not a stale copy)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from tests.train._tiny import make_learner, params_of, perturb, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.torch
def test_export_after_grpo_loads_in_transformers_with_equal_logits(tmp_path):
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from omnir1_jax.learner import grpo_stage
    from omnir1_jax.models.qwen2_5_omni import from_hf

    cfg = tiny_config(str(tmp_path / "syn"), str(tmp_path / "run"), steps=1, grounder_bridge=False)
    cfg = dataclasses.replace(
        cfg, grpo=dataclasses.replace(cfg.grpo, rewards=dataclasses.replace(cfg.grpo.rewards, alpha_a=0.0, alpha_g=0.0))
    )  # R_fmt + R_K: no System 2 needed
    tr = make_learner(cfg, None, stage=grpo_stage(cfg, export=True))
    perturb(tr.policy)  # the exported weights are not the initial ones
    try:
        tr.train(progress=False)
    finally:
        tr.close()
    hf_dir = os.path.join(cfg.run.out_dir, "hf")
    ours = from_hf(hf_dir)  # our reader gives back exactly the trained parameters
    jax.tree.map(np.testing.assert_array_equal, params_of(ours), params_of(tr.policy))
    theirs = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(hf_dir).eval()
    ids = np.random.default_rng(0).integers(5, 400, (2, 17)).astype(np.int64)
    with torch.no_grad():
        want = theirs(input_ids=torch.from_numpy(ids), attention_mask=torch.ones(2, 17, dtype=torch.long)).logits
    got = np.asarray(tr.policy(input_ids=ids, attention_mask=np.ones((2, 17), np.int64)).logits)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)


_EVAL_SCRIPT = textwrap.dedent("""
    import dataclasses, json, os, sys
    import jax, jax.numpy as jnp
    import flax.nnx as nnx
    from omnir1_jax.config import MeshSpec
    from omnir1_jax import evaluation, train
    from tests.train._tiny import tiny_config

    seen = {}

    def checksum(policy):
        leaves = jax.tree.leaves(nnx.state(policy, nnx.Param))
        return float(jax.jit(lambda t: sum(jnp.sum(jnp.abs(x)) for x in t))(leaves))

    def fake_evaluate(cfg, policy, tokenizer, records, **kw):  # records which parameters each evaluation saw
        seen[kw["tag"]] = checksum(policy)
        return {"metric": "J&F", "value": 0.0, "J&F": 0.0, "count": 0}

    evaluation.evaluate_policy = fake_evaluate
    train.evaluate_policy = fake_evaluate  # train imports it by name
    cfg = tiny_config(os.path.join(sys.argv[1], "syn"), os.path.join(sys.argv[1], "run"), steps=2)
    # weight decay moves the parameters even while a random policy's rewards (and so its gradients) are zero
    cfg = dataclasses.replace(cfg, mesh=MeshSpec(data=1, fsdp=2, tensor=1),
                              optim=dataclasses.replace(cfg.optim, weight_decay=0.1))
    summary = train.run(cfg)
    trained = summary["policy"]
    print(json.dumps({"seen": seen, "final": checksum(trained), "devices": jax.device_count(),
                      "mesh_devices": int(trained.language_model.embed_tokens.weight[...].sharding.mesh.size)}))
""")


@pytest.mark.torch
def test_evaluation_after_grpo_on_a_mesh_reads_the_trained_parameters(tmp_path):
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2 " + os.environ.get("XLA_FLAGS", ""),
        JAX_PLATFORMS="cpu",
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _EVAL_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["devices"] == 2 and res["mesh_devices"] == 2
    seen = res["seen"]
    assert set(seen) == {"before_grpo", "after_grpo"}
    # after GRPO the evaluator saw the parameters the learner trained (and they moved during GRPO)
    assert seen["after_grpo"] == pytest.approx(res["final"], rel=1e-7)
    assert seen["after_grpo"] != pytest.approx(seen["before_grpo"], rel=1e-7)
