"""LoRA over the NNX state: identity at init, only the factors train, merged == unmerged."""

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.lora import Frozen, apply_lora, lora_parameter_count, merge_lora
from omnir1_jax.models import qwen2_5_omni
from omnir1_jax.policy import make_scorer
from omnir1_jax.rl.update import make_optimizer, nll_step


def _inputs(vocab, b=2, t=10, seed=0):
    ids = np.random.default_rng(seed).integers(20, vocab, size=(b, t)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, :3] = 0  # left padding on one row
    return qwen2_5_omni.prepare_inputs(_CFG, input_ids=ids, attention_mask=mask)


_CFG = qwen2_5_omni.tiny(hidden_size=32, num_layers=2, vision_depth=1, audio_layers=1)


@pytest.fixture(scope="module")
def _initial():
    return qwen2_5_omni.init_model(_CFG, seed=1)


@pytest.fixture()
def base(_initial):
    """A fresh copy of the initial model per test (apply_lora consumes its base); one initialiser compile."""
    return nnx.clone(_initial)


def _logits(model, inputs):
    return np.asarray(model.logits(model.hidden_states(inputs)))


def test_zero_b_leaves_logits_unchanged_and_targets_are_the_decoder_projections(base):
    inputs = _inputs(_CFG.text.vocab_size)
    ref = _logits(base, inputs)
    lora = apply_lora(base, rank=4, alpha=8.0)
    np.testing.assert_array_equal(_logits(lora, inputs), ref)
    # 7 projections x 2 layers; nothing outside the text decoder
    assert len(lora.paths) == 14 and all("language_model" in p for p in lora.paths)
    assert not nnx.state(lora.base, nnx.Param)  # the base holds no trainable Param any more
    n_lora, n_base = lora_parameter_count(lora)
    d, f = _CFG.text.hidden_size, _CFG.text.intermediate_size
    kv = _CFG.text.num_key_value_heads * _CFG.text.head_dim
    per_layer = 4 * ((d + d) + (d + kv) * 2 + (d + d)) + 4 * ((d + f) * 2 + (f + d))
    assert n_lora == 2 * per_layer and n_base > n_lora


def test_a_step_changes_only_the_factors_and_lowers_the_loss(base):
    inputs = _inputs(_CFG.text.vocab_size)
    lora = apply_lora(base, rank=4, alpha=8.0, seed=3)
    frozen_before = jax.tree.map(np.array, nnx.state(lora, Frozen))
    a_before = [np.array(x[...]) for x in lora.lora_a]
    opt = nnx.Optimizer(lora, make_optimizer(1e-2, weight_decay=0.0), wrt=nnx.Param)
    scorer = make_scorer(False, 1.0)
    target = jnp.asarray(np.random.default_rng(1).integers(20, 500, size=(2, 6)), jnp.int32)
    mask = jnp.ones_like(target)
    losses = [float(nll_step(lora, opt, inputs, target, mask, scorer=scorer)["loss"]) for _ in range(3)]
    jax.tree.map(np.testing.assert_array_equal, frozen_before, jax.tree.map(np.array, nnx.state(lora, Frozen)))
    assert all(np.abs(np.array(b[...])).max() > 0 for b in lora.lora_b)  # every B moved off zero
    # after the first step B != 0, so A gets gradient from the second step on
    assert any(not np.array_equal(a0, np.array(a[...])) for a0, a in zip(a_before, lora.lora_a))
    assert losses[2] < losses[0]


def test_merged_weights_give_the_unmerged_logits(base):
    inputs = _inputs(_CFG.text.vocab_size, seed=2)
    lora = apply_lora(base, rank=4, alpha=8.0, seed=5)
    rng = np.random.default_rng(0)
    for b in lora.lora_b:  # non-zero B, as after training
        b[...] = jnp.asarray(rng.normal(0, 0.05, b[...].shape), jnp.float32)
    unmerged = _logits(lora, inputs)
    merged = merge_lora(lora)
    assert isinstance(merged, qwen2_5_omni.Qwen2_5OmniThinker) and nnx.state(merged, nnx.Param)
    np.testing.assert_allclose(_logits(merged, inputs), unmerged, atol=1e-5, rtol=1e-5)
    # and the update really is W + (alpha / r) A B
    p = lora.paths[0]
    w0 = dict(nnx.to_flat_state(nnx.state(lora.base)))[p][...]
    w1 = dict(nnx.to_flat_state(nnx.state(merged)))[p][...]
    a, bb = np.asarray(lora.lora_a[0][...]), np.asarray(lora.lora_b[0][...])
    np.testing.assert_allclose(np.asarray(w1) - np.asarray(w0), 2.0 * a @ bb, atol=1e-6)
    assert np.abs(unmerged - _logits(lora.base, inputs)).max() > 1e-4  # the factors matter


def test_bad_spec_raises(_initial):
    with pytest.raises(ValueError, match="rank"):
        apply_lora(nnx.clone(_initial), rank=0)
    with pytest.raises(ValueError, match="no 2-D kernel"):
        apply_lora(nnx.clone(_initial), targets=("nope",))
