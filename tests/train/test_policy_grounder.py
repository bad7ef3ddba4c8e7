"""``KIND:@policy`` grounders (System 2 = the policy, Omni-R1 section 4.1) resolve to the policy's directory, and
only where a bridge is started; the unresolved spec never reaches a bridge."""

import dataclasses

import pytest

from omnir1_jax.runtime.bridge import open_bridge, resolve_grounder
from tests.train._tiny import TINY_MODEL


def test_policy_grounder_needs_a_policy_directory(tmp_path):
    from omnir1_jax.config import BridgeSpec, ConfigError

    spec = BridgeSpec(grounder="qwen2_5_omni:@policy")
    with pytest.raises(ConfigError, match="model.checkpoint"):
        resolve_grounder(spec, None)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_grounder(spec, str(tmp_path / "missing"))
    assert resolve_grounder(spec, str(tmp_path)).grounder == f"qwen2_5_omni:{tmp_path}"
    # a remote bridge serves what it was started with; other grounders pass through
    remote = dataclasses.replace(spec, start=False, addresses=("tcp://h:1",))
    assert resolve_grounder(remote, None) is remote
    plain = BridgeSpec(grounder="qwen2_5_omni:checkpoints/omni")
    assert resolve_grounder(plain, None) is plain
    with pytest.raises(ConfigError, match="not resolved"):
        open_bridge(spec, str(tmp_path))


@pytest.mark.torch
def test_export_carries_the_checkpoints_processor_and_the_grounder_serves_it(tmp_path):
    """A policy exported from a real-style checkpoint (processor files beside the weights) keeps the checkpoint's
    tokenizer / processor files, not its weights, and the bridge's qwen2_5_omni grounder loads it through them and
    answers exactly as the JAX policy decodes."""
    import json
    import os

    import numpy as np

    from omnir1_jax import policy as policy_lib
    from omnir1_jax.config import ModelSpec
    from omnir1_jax.models.qwen2_5_omni.testing import build_tiny_processor
    from sam2_bridge.server.grounder import QwenBackend
    from tests.train.test_system2_is_the_policy import _greedy_text

    src = tmp_path / "ckpt"
    proc = build_tiny_processor()
    proc.save_pretrained(str(src))
    for name, data in (
        ("config.json", b"{}"),
        ("model.safetensors.index.json", b"{}"),
        ("spk_dict.pt", b"x"),
        ("model-00001-of-00002.safetensors", b"x"),
    ):
        (src / name).write_bytes(data)
    assets = {n for n in os.listdir(src) if n.endswith((".json", ".jinja", ".txt"))} - {
        "config.json",
        "model.safetensors.index.json",
    }
    assert "preprocessor_config.json" in assets or "processor_config.json" in assets
    policy = policy_lib.build_policy(ModelSpec(overrides=TINY_MODEL), seed=5)
    out = policy_lib.export_policy(policy, str(tmp_path / "hf"), assets_from=str(src))
    files = set(os.listdir(out))
    assert files == assets | {"config.json", "model.safetensors"}
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["model_type"] == "qwen2_5_omni_thinker"  # the Thinker's own config, not the source's
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".export_")]  # no staging left behind

    backend = QwenBackend("qwen2_5_omni", out, max_new_tokens=24)
    # the checkpoint's own processor (its 3 s audio padding), not the stand-in built for a bare export (30 s)
    assert backend.processor.feature_extractor.chunk_length == proc.feature_extractor.chunk_length == 3
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    got = backend.ground([image], ["the blue square"])[0].text
    tok = policy_lib.build_tokenizer(ModelSpec(checkpoint=out))
    assert len(got) > 5 and got == _greedy_text(policy, tok, image, "the blue square", 24)
