"""The micro-batched update encodes each prompt's pixels once per step (``rl.update._accumulate`` with
``CompletionScorer.features``) and still equals the un-micro-batched update.

Tiny Thinker in float32; 2 prompts, each with an image (4x6 patches) and a 2-frame video (2x4x4 patches), x
group 4 = 8 rows with ragged completion masks (one row empty). Reference: the same loss on the whole batch in one
piece (``micro_batches=1``, where the encoders run once anyway): loss and gradients within 1e-5. The encoders'
executions are counted at run time (a ``jax.debug.callback`` in ``Thinker.encode``): once per step with the
split, once per micro-batch with a scorer that cannot split them off (a plain function, as before).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import (
    CompletionScorer,
    Qwen2_5OmniThinker,
    group_completion_logprobs,
    init_model,
    prepare_inputs,
    repeat_prompt,
    tiny,
)
from omnir1_jax.rl.update import LossSpec, _grpo_grads, _nll_grads, score

GROUP, C = 4, 6


def _prompt(cfg, rng):
    img = [cfg.vision_start_token_id] + [cfg.image_token_id] * 6 + [cfg.vision_end_token_id]
    vid = [cfg.vision_start_token_id] + [cfg.video_token_id] * 8 + [cfg.vision_end_token_id]
    rows = [[1, 20, 30] + img + vid + [40, 41], [1, 50] + img + [60] + vid + [51, 52, 53]]
    t = max(len(r) for r in rows)
    ids, mask = np.zeros((2, t), np.int64), np.zeros((2, t), np.int64)
    for i, r in enumerate(rows):
        ids[i, t - len(r) :], mask[i, t - len(r) :] = r, 1
    d = cfg.vision.patch_dim
    return prepare_inputs(
        cfg,
        input_ids=ids,
        attention_mask=mask,
        image_grid_thw=np.array([[1, 4, 6]] * 2),
        pixel_values=rng.standard_normal((48, d)),
        video_grid_thw=np.array([[2, 4, 4]] * 2),
        pixel_values_videos=rng.standard_normal((64, d)),
        video_second_per_grid=np.ones(2),
    )


@pytest.fixture(scope="module")
def batch():
    cfg = tiny(vision_depth=1, audio_layers=1)
    rng = np.random.default_rng(0)
    prompt = repeat_prompt(_prompt(cfg, rng), GROUP)
    r = 2 * GROUP
    comp = jnp.asarray(rng.integers(20, 500, (r, C)), jnp.int32)
    lengths = np.array([6, 3, 0, 5, 1, 6, 2, 4])
    cmask = jnp.asarray(np.arange(C)[None, :] < lengths[:, None], jnp.int32)
    model = init_model(cfg, seed=5)
    scorer = CompletionScorer(group_size=GROUP)
    lp = score(model, prompt, comp, cmask, scorer=scorer)
    old = lp + jnp.asarray(rng.normal(0, 0.3, (r, C)), jnp.float32)  # off-policy: some ratios clip
    ref = lp + jnp.asarray(rng.normal(0, 0.2, (r, C)), jnp.float32)
    adv = jnp.asarray(rng.normal(0, 1, (r,)), jnp.float32)
    return model, prompt, comp, cmask, old, ref, adv


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _encoder_grads(grads):
    state = nnx.to_flat_state(grads)
    return [np.asarray(v[...], np.float64) for p, v in state if p[0] == "visual"]


def _run_counted(monkeypatch, model, args, scorer, micro):
    """``_grpo_grads`` with ``micro`` micro-batches in a fresh jit (nothing of an earlier trace reused), the
    encoders' executions counted at run time: ``(grads, metrics, {kind: runs})``."""
    runs = {"image": 0, "video": 0, "audio": 0}
    original = Qwen2_5OmniThinker.encode

    def counted(self, inputs, kind, *, remat=False):
        out = original(self, inputs, kind, remat=remat)
        jax.debug.callback(lambda: runs.__setitem__(kind, runs[kind] + 1))
        return out

    monkeypatch.setattr(Qwen2_5OmniThinker, "encode", counted)
    spec = LossSpec(micro_batches=micro)
    fn = nnx.jit(lambda m, *a: _grpo_grads(m, *a, scorer, spec))
    grads, metrics = jax.block_until_ready(fn(model, *args))
    jax.effects_barrier()
    monkeypatch.setattr(Qwen2_5OmniThinker, "encode", original)
    return grads, metrics, runs


def test_encoder_once_update_equals_the_one_piece_update(batch, monkeypatch):
    model, *args = batch
    scorer = CompletionScorer(group_size=GROUP)
    full_g, full_m, full_runs = _run_counted(monkeypatch, model, args, scorer, 1)
    acc_g, acc_m, acc_runs = _run_counted(monkeypatch, model, args, scorer, 2)  # two slices of one group each
    # the encoders ran once in the micro-batched update, as in the one-piece one
    assert full_runs == acc_runs == {"image": 1, "video": 1, "audio": 0}
    assert jax.tree.structure(full_g) == jax.tree.structure(acc_g)
    # the vision encoder's gradient is there, and large enough that a lost micro-batch would show
    vis = _encoder_grads(full_g)
    assert max(float(np.abs(x).max()) for x in vis) > 1e-3
    for a, b in zip(_leaves(acc_g), _leaves(full_g)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert full_m["clip_frac"] > 0  # the clip is active in this batch
    assert abs(float(acc_m["loss"]) - float(full_m["loss"])) <= 1e-5
    for k in full_m:
        np.testing.assert_allclose(float(acc_m[k]), float(full_m[k]), rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_plain_scorer_encodes_in_every_micro_batch(batch, monkeypatch):
    """The counter's check: a scorer that cannot split the encoders off (a plain function) encodes in every
    micro-batch, as every scorer did before."""
    model, *args = batch
    plain = functools.partial(group_completion_logprobs, group_size=GROUP)
    assert _run_counted(monkeypatch, model, args, plain, 2)[2] == {"image": 2, "video": 2, "audio": 0}


@pytest.mark.slow  # the same accumulation (_accumulate) as the GRPO update above, with the NLL loss
def test_encoder_once_nll_equals_the_one_piece_nll(batch):
    model, prompt, comp, cmask = batch[:4]
    scorer = CompletionScorer(group_size=GROUP)
    run = lambda micro: nnx.jit(lambda m: _nll_grads(m, prompt, comp, cmask, scorer, micro))(model)
    (full_g, full_l), (acc_g, acc_l) = run(1), run(2)
    for a, b in zip(_leaves(acc_g), _leaves(full_g)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(float(acc_l), float(full_l), rtol=1e-6)
