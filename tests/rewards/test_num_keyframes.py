"""``grpo.num_keyframes``: the prompt states K, parsing keeps the first K answer items."""

import json

import numpy as np
import pytest

from omnir1_jax.config import ConfigError, GRPOSpec
from omnir1_jax.data import prompts
from omnir1_jax.rewards import TABLE4_WEIGHTS, num_reward, parse_answer
from omnir1_jax.rewards.parsing import keep_first_items
from omnir1_jax.rl import rollout


def _text(frames, bad_first=False):
    objs = [
        {"start_time": f"00:{f / 2:05.2f}", "end_time": f"00:{f / 2:05.2f}", "description": f"d{f}"} for f in frames
    ]
    if bad_first:
        objs.insert(0, {"start_time": "00:03.00", "end_time": "00:01.00", "description": "backwards"})
    return f"<think>t</think><answer>{json.dumps(objs)}</answer>"


def test_keep_first_items_in_answer_order():
    a = parse_answer(_text((10, 0, 2, 4, 6)), 12)
    assert a.keyframes == (0, 2, 4, 6, 10)
    k = keep_first_items(a, 4)
    assert k.keyframes == (0, 2, 4, 10) and len(k.items) == 4  # items 10, 0, 2, 4: answer order, not frame order
    assert k.descriptions == ("d0", "d2", "d4", "d10")
    assert num_reward([a])[0] == pytest.approx(0.75) and num_reward([k])[0] == pytest.approx(1.0)  # K 5 -> 4
    # an invalid item is still one of the first K
    b = keep_first_items(parse_answer(_text((0, 2, 4, 6), bad_first=True), 12), 4)
    assert b.valid and b.keyframes == (0, 2, 4) and b.items[0].error is not None
    # no-ops: None, or no more items than K; a K < 1 is an error
    assert keep_first_items(a, None) is a and keep_first_items(a, 5) is a
    with pytest.raises(ValueError, match="max_items"):
        keep_first_items(a, 0)
    # an answer whose first K items are all invalid becomes invalid (no keyframes)
    c = keep_first_items(parse_answer(_text((0,), bad_first=True), 12), 1)
    assert not c.valid and c.keyframes == ()


def test_prompts_state_exactly_k_moments():
    free = prompts.vos_prompt("the cat", 12)
    fixed = prompts.vos_prompt("the cat", 12, num_keyframes=4)
    assert "Select about 4 most relevant moments" in free and "about 4" not in fixed
    assert "Select exactly 4 most relevant moments that contain the referred object(s)" in fixed
    assert "Your final answer should be 4 JSON objects, one per moment, each in the following format:" in fixed
    assert (
        fixed.replace("exactly 4", "about 4").replace(
            "be 4 JSON objects, one per moment, each in", "be a JSON object in"
        )
        == free
    )  # nothing else changes
    assert "Select exactly 3 moments" in prompts.vos_prompt_short("x", 8, num_keyframes=3)
    with pytest.raises(ValueError, match="num_keyframes"):
        prompts.vos_prompt("x", 8, num_keyframes=0)


def test_build_prompt_transform_passes_k():
    from omnir1_jax.data import transforms
    from omnir1_jax.data.schema import ExpressionRecord

    names = tuple(f"{i:05d}" for i in range(6))
    rec = ExpressionRecord("x", "train", "v", "0", "the dog", names, tuple(f"f/{n}.jpg" for n in names))
    ex = transforms.BuildPrompt(num_keyframes=3).random_map(
        {"record": rec, "frame_indices": np.arange(6)}, np.random.default_rng(0)
    )
    assert "Select exactly 3 most relevant moments" in ex["prompt"]


def test_config_option():
    assert GRPOSpec().num_keyframes is None and GRPOSpec(num_keyframes=4).num_keyframes == 4
    with pytest.raises(ConfigError, match="num_keyframes"):
        GRPOSpec(num_keyframes=0)


def test_group_rewards_use_only_the_first_k_items():
    # T = 12, target area t + 1 on frame t (peak 12). Six single-frame items at 0, 2, ..., 10.
    # K = 4 keeps frames 0, 2, 4, 6: diversity 1 + num 1 + saliency (1 + 3 + 5 + 7) / 4 / 12 = 1/3, + format 1.
    # All six: diversity 1.5 + num 0.5 + saliency (1 + 3 + ... + 11) / 6 / 12 = 0.5, + format 1.
    areas = np.arange(1, 13, dtype=float)
    masks = np.zeros((12, 4, 4), bool)
    for t, a in enumerate(areas):
        masks[t].reshape(-1)[: int(a)] = True
    text = _text((0, 2, 4, 6, 8, 10))
    boxes, valid = np.zeros((12, 1, 4), np.float32), np.ones((12, 1), bool)
    w = TABLE4_WEIGHTS["R_K"]
    cut, _ = rollout.group_rewards([text], 12, masks, boxes, valid, None, [[]], weights=w, num_keyframes=4)
    full, _ = rollout.group_rewards([text], 12, masks, boxes, valid, None, [[]], weights=w)
    assert cut[0] == pytest.approx(1 + 2 + 1 / 3) and full[0] == pytest.approx(1 + 2 + 0.5)
    assert [a.keyframes for a in rollout.parse_group([text], 12, num_keyframes=2)] == [(0, 2)]
