"""Config, conversion errors, memory report and small pure functions of the Flax Thinker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnir1_jax.models.qwen2_5_omni import (
    CheckpointError,
    ConfigError,
    InputError,
    Qwen2_5OmniConfig,
    TextConfig,
    filter_logits,
    from_hf,
    generate,
    get_rope_index,
    init_model,
    memory_report,
    prepare_inputs,
    qwen2_5_omni_3b,
    qwen2_5_omni_7b,
    tiny,
    to_hf,
)
from omnir1_jax.models.qwen2_5_omni.convert import param_shapes
from omnir1_jax.models.qwen2_5_omni.safetensors_io import SafetensorsDir, save_file


def _param_count(cfg):
    return sum(int(np.prod(shape)) for _, shape in param_shapes(cfg))


@pytest.mark.torch
# the 3B preset differs from the 7B one only in its numbers (~10 s of transformers model building: slow)
@pytest.mark.parametrize("preset", [qwen2_5_omni_7b, pytest.param(qwen2_5_omni_3b, marks=pytest.mark.slow), tiny])
def test_param_count_matches_transformers_on_meta_device(preset):
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    cfg = preset()
    with torch.device("meta"):
        hf = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**cfg.to_hf_dict()))
    assert _param_count(cfg) == sum(p.numel() for p in hf.parameters())


@pytest.mark.torch
def test_config_round_trips_through_transformers():
    from transformers import Qwen2_5OmniThinkerConfig

    for cfg in (tiny(), qwen2_5_omni_7b()):
        d = Qwen2_5OmniThinkerConfig(**cfg.to_hf_dict()).to_dict()
        assert Qwen2_5OmniConfig.from_hf_dict(d) == cfg
        assert Qwen2_5OmniConfig.from_hf_dict({"model_type": "qwen2_5_omni", "thinker_config": d}) == cfg


def test_bad_configs_raise_typed_errors(tmp_path):
    with pytest.raises(ConfigError, match="mrope_section"):
        TextConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, mrope_section=(2, 2, 2))
    bad = tiny().to_hf_dict()
    del bad["text_config"]["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"config\.json.*hidden_size"):
        Qwen2_5OmniConfig.from_pretrained(tmp_path)


def test_checkpoint_with_wrong_shape_raises_naming_the_tensor(tmp_path):
    model = init_model(tiny())
    path = to_hf(model, tmp_path / "ckpt")
    files = SafetensorsDir(path)
    tensors = {k: np.array(files.get(k)) for k in files}
    tensors["model.layers.1.self_attn.k_proj.weight"] = np.zeros((16, 64), np.float32)
    del files
    save_file(tensors, str(path) + "/model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.self_attn\.k_proj\.weight.*\(16, 64\)"):
        from_hf(path)
    with pytest.raises(FileExistsError):
        to_hf(model, path)


def test_memory_report_counts_and_divides_by_the_mesh():
    cfg = qwen2_5_omni_7b()
    one = memory_report(cfg, {"data": 1, "fsdp": 1, "tensor": 1})
    eight = memory_report(cfg, {"data": 1, "fsdp": 4, "tensor": 2})
    assert one["params"] == eight["params"] == _param_count(cfg)
    assert one["param_bytes"] == 4 * one["params"]  # float32 master weights (the training default)
    assert memory_report(cfg, {"data": 1}, param_dtype="bfloat16")["param_bytes"] == 2 * one["params"]
    assert one["adam_bytes"] == 8 * one["params"]  # two float32 moments
    # Only norms, conv front ends and a few biases stay replicated: a bit more than 1/8 per device.
    assert 1 / 8 <= eight["total_bytes"] / one["total_bytes"] < 1 / 8 * 1.01


def test_a_seed_outside_uint32_is_an_error_naming_it():
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match=f"seed={bad}"):
            init_model(tiny(), seed=bad)


def test_text_only_positions_are_cumulative_and_padding_gets_one():
    ids = np.array([[0, 0, 7, 8, 9], [5, 6, 7, 8, 9]])
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    pos, delta = get_rope_index(tiny(), ids, mask)
    np.testing.assert_array_equal(pos[0], [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]])
    assert (pos[0] == pos[1]).all() and (pos[0] == pos[2]).all()
    np.testing.assert_array_equal(delta, [0, 0])


def test_input_errors_name_the_problem():
    cfg = tiny()
    ids = np.array([[1, 9, 12, 12, 10, 20]])  # 2 image placeholders
    grid = np.array([[1, 4, 6]])  # 24 patches -> 6 merged tokens
    px = np.zeros((24, cfg.vision.patch_dim), np.float32)
    with pytest.raises(Exception, match="placeholder"):
        prepare_inputs(cfg, input_ids=ids, image_grid_thw=grid, pixel_values=px)
    with pytest.raises(InputError, match="unknown model input"):
        prepare_inputs(cfg, input_ids=ids, labels=ids)
    with pytest.raises(InputError, match="left-padded"):
        generate(
            init_model(cfg),
            dict(input_ids=np.array([[5, 6, 0]]), attention_mask=np.array([[1, 1, 0]])),
            max_new_tokens=2,
            greedy=True,
        )


def test_filter_logits_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50)).astype(np.float32)
    got = np.asarray(filter_logits(x, top_k=10, top_p=0.7))
    for row, out in zip(x, got):
        order = np.argsort(-row)
        keep = set(order[:10])
        p = np.exp(row[order[:10]] - row[order[0]])
        p /= p.sum()
        cum_before = np.cumsum(p) - p
        keep &= set(order[:10][cum_before < 0.7])
        kept = np.flatnonzero(out > np.finfo(np.float32).min)
        assert set(kept) == keep
        np.testing.assert_array_equal(out[kept], row[kept])


def test_remat_gives_the_same_logprobs_and_gradients():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from omnir1_jax.models.qwen2_5_omni import completion_logprobs

    cfg = tiny(num_layers=2)
    model = init_model(cfg, seed=2)
    ids = np.array([[0, 1, 30, 31, 32], [1, 40, 41, 42, 43]])
    prompt = prepare_inputs(cfg, input_ids=ids, attention_mask=(np.arange(5)[None] >= [[1], [0]]).astype(int))
    comp = jnp.array([[50, 51, 52], [60, 61, 0]])
    mask = jnp.array([[1, 1, 1], [1, 1, 0]])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def f(params, remat):
        lp = completion_logprobs(nnx.merge(graphdef, params, rest), prompt, comp, mask, remat=remat)
        return lp.sum(), lp

    (_, lp0), g0 = jax.jit(jax.value_and_grad(lambda p: f(p, False), has_aux=True))(params)
    (_, lp1), g1 = jax.jit(jax.value_and_grad(lambda p: f(p, True), has_aux=True))(params)
    np.testing.assert_allclose(lp1, lp0, atol=1e-5)
    assert np.all(np.asarray(lp0)[1, 2] == 0) and np.all(np.asarray(lp0)[mask == 1] < 0)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_tiny_encoder_depths_and_overrides_that_name_no_argument():
    from omnir1_jax.config import ConfigError as SpecError
    from omnir1_jax.config import ModelSpec
    from omnir1_jax.policy import build_model_config

    # the default tiny model (the CPU demo's) keeps two vision blocks, the last with full attention, and two audio
    # layers; the suite's smaller one has one of each, its only vision block with full attention
    default, small = tiny(), tiny(vision_depth=1, audio_layers=1)
    assert (default.vision.depth, default.vision.fullatt_block_indexes, default.audio.encoder_layers) == (2, (1,), 2)
    assert (small.vision.depth, small.vision.fullatt_block_indexes, small.audio.encoder_layers) == (1, (0,), 1)
    assert build_model_config(ModelSpec(overrides=(("vision_depth", 1), ("audio_layers", 1)))) == small
    for bad in (("vision_depth", 0), ("audio_layers", 0), ("audio_layers", 1.5)):
        with pytest.raises(ConfigError, match=f"tiny: {bad[0]}={bad[1]!r} must be an integer >= 1"):
            tiny(**dict([bad]))
    with pytest.raises(SpecError, match=r"model.overrides: \['depth'\] are not arguments of the tiny preset"):
        build_model_config(ModelSpec(overrides=(("depth", 1),)))
    with pytest.raises(SpecError, match="only applies to the tiny preset"):
        build_model_config(ModelSpec(preset="qwen2_5_omni_7b", overrides=(("num_layers", 1),)))
