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
    bad = [
        "<think></think>A",
        "<think>s</think> B because",
        "B",
        "<think>s</think>",
        "<think>s</think>E",
        "x<think>s</think>A",
    ]
    assert think_format_reward(ok + bad).tolist() == [1] * len(ok) + [0] * len(bad)


# CrossOmni paper, Table 18 ("Prompt for GRPO"), transcribed: the paper prints each prompt as HTML; here every
# <p> paragraph and every list item is one line, the tags dropped, the words unchanged.
TABLE18_CONSISTENCY = [
    "You are assessing how well the 'hypothesis' text covers the key information from the 'reference' text. "
    "Differences in wording or extra details in the 'hypothesis' are fine if the 'reference's' main points are "
    "included.:",
    "Score based on this coverage:",
    "5 points : Hypothesis clearly and accurately reflects significant core themes or key aspects of the reference. "
    "It demonstrates a good understanding of a substantial part of the reference material.",
    "4 points : Hypothesis reflects some important themes or aspects of the reference. The connection is evident, "
    "though perhaps not as comprehensive or central as a 5.",
    "2 points : Hypothesis shows a recognizable connection to themes or aspects of the reference, but it might be "
    "more superficial, focus on less central points, or only partially grasp a key aspect.",
    "1 points : Hypothesis has a tenuous or very limited connection to the reference. It might touch on a peripheral "
    "detail or a heavily reinterpreted aspect, but largely misses the main substance.",
    "0 points : Hypothesis does not reflect any significant themes or key aspects of the reference, or is on a "
    "completely different topic.",
    "Example analysis process:",
    "Identify main themes and key aspects in 'reference'. Determine if 'hypothesis' connects to or discusses any of "
    "these themes/aspects from 'reference'.",
    "Judge the strength and relevance of this connection. Is a core part of the 'reference' reflected?",
    "Differences are expected; evaluate if the 'hypothesis' still meaningfully reflects some key part of the "
    "'reference'.",
    "Assign score based on how well a significant aspect is reflected.",
    "reference: {reference}",
    "hypothesis: {hypothesis}",
    "only return the score number:",
]
TABLE18_COHERENCE = [
    "Please evaluate whether the reasoning path performs effective cross-modal reasoning from visual video content "
    "to text (Additional Information), and give a score from 0 to 3.",
    "Scoring criteria (1 point for each satisfied item):",
    "1. Question-guided visual localization (1 point): The reasoning interprets the question and uses it to identify "
    "and localize the relevant person/object in the video, including describing its visual appearance, rather than "
    "directly searching the text.",
    "2. Text retrieval via visual description (1 point): Using this visual description, the reasoning explicitly "
    "finds the corresponding Additional Information about this person/object in the text (e.g., matching name or "
    "described appearance), clearly linking video appearance to a specific text entry.",
    "3. Answer grounded in retrieved text (1 point): The reasoning then uses the retrieved textual Additional "
    "Information as the key evidence to select the final option A/B/C/D, with the answer clearly supported by that "
    "text and without major unsupported assumptions or contradictions.",
    "Scoring rule:",
    "- Award 1 point for each criterion that is clearly satisfied.",
    "- The final score is an integer from 0 to 3.",
    "reasoning path: {hypothesis}",
    "Only return the score number (an integer from 0 to 3):",
]


def test_prompts_are_table18():
    assert "\n".join(TABLE18_CONSISTENCY) == CONSISTENCY_PROMPT
    assert "\n".join(TABLE18_COHERENCE) == COHERENCE_PROMPT
    # the placeholders are the only format fields
    assert CONSISTENCY_PROMPT.format(reference="R", hypothesis="H").endswith(
        "reference: R\nhypothesis: H\nonly return the score number:"
    )


@pytest.mark.parametrize(
    "text, mx, expected",
    [
        ("4", 5, 4.0),
        (" Score: 3\n", 5, 3.0),
        ("**2**", 3, 2.0),
        ("6", 5, None),
        ("3.5", 5, None),
        ("great", 3, None),
        ("-1", 3, None),
    ],
)
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
    assert m == {
        "judge_calls": 3.0,
        "judge_unparseable": 1.0,
        "judge_errors": 1.0,
        "no_rationale": 1.0,
        "judge_mean_raw": 5.0,
    }
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
