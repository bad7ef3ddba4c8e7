"""``KIND:@policy`` grounders (System 2 = the policy, Omni-R1 section 4.1) resolve to the policy's directory, and
only where a bridge is started; the unresolved spec never reaches a bridge."""

import dataclasses

import pytest


def test_policy_grounder_needs_a_policy_directory(tmp_path):
    from omnir1_jax.config import BridgeSpec, ConfigError
    from omnir1_jax.runtime import setup as S

    spec = BridgeSpec(grounder="qwen2_5_omni:@policy")
    with pytest.raises(ConfigError, match="model.checkpoint"):
        S.resolve_grounder(spec, None)
    with pytest.raises(ConfigError, match="does not exist"):
        S.resolve_grounder(spec, str(tmp_path / "missing"))
    assert S.resolve_grounder(spec, str(tmp_path)).grounder == f"qwen2_5_omni:{tmp_path}"
    # a remote bridge serves what it was started with; other grounders pass through
    remote = dataclasses.replace(spec, start=False, addresses=("tcp://h:1",))
    assert S.resolve_grounder(remote, None) is remote
    plain = BridgeSpec(grounder="qwen2_5_omni:/ckpt")
    assert S.resolve_grounder(plain, None) is plain
    with pytest.raises(ConfigError, match="not resolved"):
        S.open_bridge(spec, str(tmp_path))
