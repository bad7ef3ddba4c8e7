"""The speed-oriented code paths of the Flax Thinker agree with the plain ones (tiny random model, float32).

- ``group_completion_logprobs`` (shared prompt prefix per GRPO group) vs ``completion_logprobs`` over full rows:
  log-probs and parameter gradients of a GRPO-style loss.
- ``unrepeat_prompt`` inverts ``repeat_prompt`` (token rows and placeholder positions).
- fused q/k/v and gate/up matmuls vs the separate projections.
- ``first_argmax`` and the sampler's Gumbel draw vs ``jnp.argmax`` / ``jax.random.categorical``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import (
    InputError,
    completion_logprobs,
    group_completion_logprobs,
    init_model,
    prepare_inputs,
    repeat_prompt,
    tiny,
    unrepeat_prompt,
)
from omnir1_jax.models.qwen2_5_omni.sampling import _pick, first_argmax
from omnir1_jax.models.qwen2_5_omni.testing import left_padded_image_rows

GROUP = 3


def _prompts(cfg, rng):
    """Two left-padded prompts; row 0 holds a 4x6-patch image (6 placeholder tokens)."""
    ids, mask = left_padded_image_rows(cfg, ((40, 41), (51, 52, 53)))
    return prepare_inputs(
        cfg,
        input_ids=ids,
        attention_mask=mask,
        image_grid_thw=np.array([[1, 4, 6]]),
        pixel_values=rng.standard_normal((24, cfg.vision.patch_dim)).astype(np.float32),
    )


@pytest.fixture(scope="module")
def setup():
    cfg = tiny(num_layers=2, vision_depth=1, audio_layers=1)
    rng = np.random.default_rng(0)
    model = init_model(cfg, seed=3)
    base = _prompts(cfg, rng)
    r, c = 2 * GROUP, 5
    comp = jnp.asarray(rng.integers(20, cfg.text.vocab_size, size=(r, c)), jnp.int32)
    lengths = np.array([5, 3, 1, 5, 4, 2])  # right-padded completions of different lengths
    mask = jnp.asarray((np.arange(c)[None] < lengths[:, None]).astype(np.int32))
    return cfg, model, base, comp, mask


def test_unrepeat_prompt_inverts_repeat_prompt(setup):
    cfg, _, base, _, _ = setup
    rep = repeat_prompt(base, GROUP)
    back = unrepeat_prompt(rep, GROUP)
    for f in ("input_ids", "attention_mask", "position_ids", "rope_deltas", "image_positions"):
        np.testing.assert_array_equal(np.asarray(getattr(back, f)), np.asarray(getattr(base, f)), err_msg=f)
    assert back.num_repeats == 1
    # A prompt that was not repeated into groups of this size is refused, naming the fix.
    with pytest.raises(InputError, match="repeat_prompt"):
        unrepeat_prompt(base, GROUP)


def test_group_scoring_equals_full_rows_logprobs_and_gradients(setup):
    cfg, model, base, comp, mask = setup
    prompt = repeat_prompt(base, GROUP)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    adv = jnp.asarray(np.linspace(-1.0, 1.0, 2 * GROUP), jnp.float32)

    def loss(params, grouped):
        m = nnx.merge(graphdef, params, rest)
        if grouped:
            # remat: the rematerialised prefix-cache path must give the same numbers as well.
            lp = group_completion_logprobs(
                m, prompt, comp, mask, group_size=GROUP, temperature=0.7, remat=grouped == "remat"
            )
        else:
            lp = completion_logprobs(m, prompt, comp, mask, temperature=0.7)
        # Advantage-weighted sum: every row's gradient counts, with a different weight per group member.
        return jnp.sum(lp * adv[:, None]), lp

    (_, lp_full), g_full = jax.jit(jax.value_and_grad(lambda p: loss(p, False), has_aux=True))(params)
    lp_full = np.asarray(lp_full)
    assert np.all(lp_full[np.asarray(mask) == 1] < 0)
    flat_full = jax.tree_util.tree_leaves_with_path(g_full)
    # The image encoder and every decoder weight receive gradient (through the shared prefix when grouped).
    assert sum(bool(np.any(np.asarray(a) != 0)) for _, a in flat_full) > 30
    for variant in ("plain", "remat"):
        (_, lp_grp), g_grp = jax.jit(jax.value_and_grad(lambda p: loss(p, variant), has_aux=True))(params)
        lp_grp = np.asarray(lp_grp)
        assert np.all(lp_grp[np.asarray(mask) == 0] == 0)
        np.testing.assert_allclose(lp_grp, lp_full, atol=1e-5, rtol=0, err_msg=variant)
        for (path, a), b in zip(flat_full, jax.tree_util.tree_leaves(g_grp)):
            np.testing.assert_allclose(
                np.asarray(b), np.asarray(a), atol=1e-5, rtol=0, err_msg=f"{variant} {jax.tree_util.keystr(path)}"
            )


def test_group_scoring_rejects_mismatched_groups(setup):
    _, model, base, comp, mask = setup
    with pytest.raises(InputError, match="group"):
        group_completion_logprobs(model, repeat_prompt(base, GROUP), comp[:4], mask[:4], group_size=GROUP)


def test_fused_projections_equal_separate_ones(setup, monkeypatch):
    from omnir1_jax.models.qwen2_5_omni import text

    cfg, model, base, comp, mask = setup
    fused = np.asarray(model(inputs=base).logits)
    monkeypatch.setattr(text, "can_fuse", lambda: False)
    assert model.language_model.fused_weights() is None
    separate = np.asarray(model.forward(base).logits)  # un-jitted, so the patched can_fuse is seen
    valid = np.asarray(base.attention_mask).astype(bool)
    np.testing.assert_allclose(fused[valid], separate[valid], atol=1e-5, rtol=0)


def test_first_argmax_and_gumbel_draw_match_jax():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 40)).astype(np.float32)
    x[2, [3, 17]] = 9.0  # a tie: the first index wins, as in jnp.argmax
    x = jnp.asarray(x)
    np.testing.assert_array_equal(np.asarray(first_argmax(x)), np.asarray(jnp.argmax(x, axis=-1)))
    assert int(first_argmax(x)[2]) == 3
    for seed in range(3):
        key = jax.random.key(seed)
        tok, lp = _pick(x, key, greedy=False, temperature=0.7, top_k=0, top_p=1.0)
        ref = jax.random.categorical(key, x / 0.7, axis=-1)
        np.testing.assert_array_equal(np.asarray(tok), np.asarray(ref))
        want = jax.nn.log_softmax(x / 0.7, axis=-1)[jnp.arange(6), ref]
        np.testing.assert_allclose(np.asarray(lp), np.asarray(want), atol=1e-6)
