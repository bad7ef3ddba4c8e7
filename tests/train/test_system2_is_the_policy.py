"""System 2 is the policy (Omni-R1 section 4.1: "Omni-R1 is serving as both System 1 and System 2"), on the tiny config:
train one GRPO step with ``bridge.grounder = "qwen2_5_omni:@policy"`` -> the policy is exported -> the bridge's
Qwen2.5-Omni grounder is started on the export -> the evaluation runs against it.

Checked: the training bridge's grounder is the frozen starting checkpoint and the evaluation bridge's is the
export (the bridges' own health replies); the export holds exactly the trained parameters (not the starting
ones); the grounder served from the export answers a keyframe with exactly the text the trained JAX policy
decodes greedily for the same prompt and image; the evaluation after GRPO and ``omnir1_jax.evaluate --policy``
(same resolution) produce J&F summaries.
"""

import dataclasses
import os

import numpy as np
import pytest

from omnir1_jax.runtime.bridge import open_bridge, resolve_grounder
from tests.train._tiny import TINY_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.torch]


def _params(model):
    import flax.nnx as nnx
    import jax

    return jax.tree.map(np.array, nnx.state(model, nnx.Param))


def _greedy_text(policy, tokenizer, image: np.ndarray, description: str, max_new_tokens: int) -> str:
    """The policy's greedy answer to the bridge grounder's prompt on ``image`` (our own preprocessing: the same
    ids and pixel values as Qwen2_5OmniProcessor when the image needs no resizing)."""
    from omnir1_jax import policy as policy_lib
    from omnir1_jax.data import prompts, text, vision
    from sam2_bridge.server.grounder import GROUNDING_PROMPT

    view = vision.image_view(image, min_pixels=16 * 28 * 28, max_pixels=900 * 28 * 28)
    chat = tokenizer.apply_chat_template(
        prompts.user_message(GROUNDING_PROMPT.format(description=description), image=True),
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = text.encode_with_placeholders(tokenizer, chat, image_grid_thw=view["image_grid_thw"])
    inputs = {
        "input_ids": ids[None],
        "attention_mask": np.ones((1, len(ids)), np.int32),
        "pixel_values": view["pixel_values"],
        "image_grid_thw": view["image_grid_thw"],
    }
    return policy_lib.complete(policy, tokenizer, inputs, max_new_tokens=max_new_tokens).texts[0]


def test_train_export_ground_with_the_export_and_evaluate(tmp_path, monkeypatch):
    from omnir1_jax import policy as policy_lib
    from omnir1_jax import train
    from omnir1_jax.config import BridgeSpec, ModelSpec
    from omnir1_jax.models.qwen2_5_omni import from_hf
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer
    from sam2_bridge.wire.protocol import Keyframe
    from tests.train._tiny import tiny_config

    # the starting checkpoint: a tiny random Thinker exported with its tokenizer (what model.checkpoint points at)
    start = str(tmp_path / "start")
    tiny = ModelSpec(overrides=TINY_MODEL)
    policy_lib.export_policy(policy_lib.build_policy(tiny, seed=3), start, tokenizer=build_tiny_tokenizer())
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(start))

    cfg = tiny_config(str(tmp_path / "syn"), str(tmp_path / "run"), steps=1)
    cfg = dataclasses.replace(
        cfg,
        model=ModelSpec(checkpoint=start),
        bridge=BridgeSpec(start=True, grounder="qwen2_5_omni:@policy", segmenter="synthetic", workers=1, timeout_s=600),
        # weight decay moves the parameters even while the random policy's rewards (and gradients) are zero
        optim=dataclasses.replace(cfg.optim, weight_decay=0.5),
        run=dataclasses.replace(cfg.run, eval_max_expressions=1, eval_split="valid"),
    )

    opened = []  # (grounder asked for, grounder the started bridge reports): the real bridges, recorded
    real_open = open_bridge

    def recording_open(spec, run_dir, **kw):
        bridge = real_open(spec, run_dir, **kw)
        opened.append((spec.grounder, bridge.client.health()["grounder"]))
        return bridge

    monkeypatch.setattr(train, "open_bridge", recording_open)
    summary = train.run(cfg)
    hf = os.path.join(cfg.run.out_dir, "hf")
    assert summary["hf"] == hf
    # training: System 2 = the frozen starting checkpoint; evaluation after GRPO: the export
    assert opened == [(f"qwen2_5_omni:{os.path.abspath(start)}",) * 2, (f"qwen2_5_omni:{os.path.abspath(hf)}",) * 2]
    assert np.isfinite(summary["after"]["J&F"]) and summary["after"]["count"] == 1

    # the export is the trained policy, which moved away from the start
    trained = _params(summary["policy"])
    import jax

    jax.tree.map(np.testing.assert_array_equal, _params(from_hf(hf)), trained)
    assert any(
        not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(_params(from_hf(start))), jax.tree.leaves(trained))
    )

    # the grounder served from the export answers like the trained JAX policy (112 x 112: no resize on either side)
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    bridge = open_bridge(resolve_grounder(cfg.bridge, hf), str(tmp_path / "b"), wait_s=600)
    try:
        reply = bridge.client.ground(image[None], [Keyframe(0, "the red circle")])
    finally:
        bridge.close()
    tok = policy_lib.build_tokenizer(ModelSpec(checkpoint=hf))
    want = _greedy_text(summary["policy"], tok, image, "the red circle", 256)
    assert len(want) > 20 and reply.texts[0] == want

    # omnir1_jax.evaluate --policy DIR resolves "@policy" to DIR the same way
    from omnir1_jax import evaluate

    out = str(tmp_path / "eval")
    argv = [
        "--config",
        os.path.join(os.path.dirname(__file__), "_system2_config.py"),
        "--split",
        "valid",
        "--policy",
        hf,
        "--out",
        out,
        "--max-items",
        "1",
        "--set",
        f"data.root={cfg.data.root!r}",
    ]
    recorded = []
    monkeypatch.setattr(
        evaluate, "open_bridge", lambda spec, *a, **kw: recorded.append(spec.grounder) or real_open(spec, *a, **kw)
    )
    assert evaluate.main(argv) == 0
    assert recorded == [f"qwen2_5_omni:{os.path.abspath(hf)}"]
    assert os.path.exists(os.path.join(out, "summary.json"))
