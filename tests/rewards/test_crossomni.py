"""CrossOmni rewards: choice accuracy, thinking format, judge-scored rewards with Table 18 prompts."""

import numpy as np
import pytest

from omnir1_jax.rewards import (
    COHERENCE_PROMPT,
    CONSISTENCY_PROMPT,
    choice_accuracy_reward,
    extract_choice,
    judge_reward,
    parse_judge_score,
    think_format_reward,
)


def test_extract_choice_and_accuracy():
    comps = ["<think>I see A man... so B</think>\nC", "<think>x</think><answer>D</answer>", "B. because", "none", None]
    assert [extract_choice(c) for c in comps] == ["C", "D", "B", None, None]
    acc = choice_accuracy_reward(comps, ["C", "A", "B. the text", "A", "A"])
    assert acc.tolist() == [1, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="gold"):
        choice_accuracy_reward(["A"], ["Z"])


def test_think_format():
    ok = ["<think> steps </think>\nB", "<think>s</think> <answer>C</answer>", "<think>s</think>A."]
    bad = ["<think></think>A", "<think>s</think> B because", "B", "<think>s</think>", "<think>s</think>E", "x<think>s</think>A"]
    assert think_format_reward(ok + bad).tolist() == [1] * len(ok) + [0] * len(bad)


def test_prompts_are_table18():
    assert "only return the score number:" in CONSISTENCY_PROMPT
    assert "{reference}" in CONSISTENCY_PROMPT and "{hypothesis}" in CONSISTENCY_PROMPT
    assert "an integer from 0 to 3" in COHERENCE_PROMPT and "{hypothesis}" in COHERENCE_PROMPT


@pytest.mark.parametrize("text, mx, expected", [("4", 5, 4.0), (" Score: 3\n", 5, 3.0), ("**2**", 3, 2.0),
                                                ("6", 5, None), ("3.5", 5, None), ("great", 3, None), ("-1", 3, None)])
def test_parse_judge_score(text, mx, expected):
    assert parse_judge_score(text, mx) == expected


def test_judge_reward_consistency_and_counts():
    seen = []

    def judge(prompt):
        seen.append(prompt)
        if "alpha" in prompt:
            return "5"
        if "beta" in prompt:
            return "I think it deserves a 4"  # unparseable: no leading score
        raise RuntimeError("judge down")

    comps = ["<think>alpha</think>A", "<think>beta</think>B", "<think>gamma</think>C", "no think"]
    scores, m = judge_reward(judge, "consistency", comps, ["ref"] * 4)
    assert scores.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert m == {"judge_calls": 3.0, "judge_unparseable": 1.0, "judge_errors": 1.0, "no_rationale": 1.0,
                 "judge_mean_raw": 5.0}
    assert seen[0] == CONSISTENCY_PROMPT.format(reference="ref", hypothesis="alpha")


def test_judge_reward_coherence_batched():
    calls = []

    def judge(prompts):
        calls.append(len(prompts))
        return ["3", "1"]

    scores, m = judge_reward(judge, "coherence", ["<think>a</think>A", "<think>b</think>B"], batched=True)
    np.testing.assert_allclose(scores, [1.0, 1 / 3], rtol=1e-6)
    assert calls == [2] and m["judge_unparseable"] == 0.0
    with pytest.raises(ValueError):
        judge_reward(judge, "style", ["x"])
