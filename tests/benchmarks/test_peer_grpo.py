"""The peer benchmark's task and statistics (``benchmarks/peer_task.py``, ``peer_stats.py``, ``peer_grpo.py``),
against hand-computed values; the benchmark itself (three stacks, minutes of CPU) is not run here."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")
)
import peer_grpo
import peer_stats
import peer_task


@pytest.mark.parametrize(
    "completion, terms",
    [
        (" red", (1.0, 1.0)),  # the colour, first: accuracy and format
        ("Red and more", (1.0, 1.0)),  # case-insensitive, anything may follow
        (" blue red", (0.0, 1.0)),  # starts with a colour, but the first colour is wrong
        ("xx red", (1.0, 0.0)),  # right colour, not at the start
        ("redish", (0.0, 0.0)),  # not a whole word
        ("", (0.0, 0.0)),
    ],
)
def test_reward_terms_by_hand(completion, terms):
    assert peer_task.reward_terms("red", completion) == terms
    assert peer_task.reward("red", completion) == terms[0] + 0.5 * terms[1]


def test_prompts_round_trip_and_bad_prompts_are_named():
    assert peer_task.colour_of(peer_task.prompt_of("purple")) == "purple"
    with pytest.raises(ValueError, match="'colour: pink ->'"):
        peer_task.colour_of("colour: pink ->")


def test_schedule_walks_epochs_of_every_colour():
    s = peer_task.schedule(3, 6, 4)  # 6 steps x 4 prompts = 3 epochs of the 8 colours
    assert len(s) == 6 and all(len(b) == 4 for b in s)
    flat = [peer_task.colour_of(p) for b in s for p in b]
    for e in range(3):
        assert sorted(flat[8 * e : 8 * e + 8]) == sorted(peer_task.COLOURS)
    assert peer_task.schedule(3, 6, 4) == s and peer_task.schedule(4, 6, 4) != s


def test_probability_of_improvement_by_hand():
    # pairs (a, b): 1 beats 0; 2 beats 0 and ties 2 (half); 3 beats 0 and 2 -> (1 + 1.5 + 2) / 9 = 0.5
    got = peer_stats.probability_of_improvement([1.0, 2.0, 3.0], [0.0, 2.0, 5.0])
    assert got["p"] == pytest.approx(0.5)
    assert 0.0 <= got["low"] <= 0.5 <= got["high"] <= 1.0
    assert peer_stats.probability_of_improvement([2.0, 3.0], [0.0, 1.0])["p"] == 1.0


def test_summary_of_two_tiny_runs_by_hand():
    def run(stack, seed, rewards, t_step):
        rows = [
            dict(
                step=i + 1,
                reward=r,
                accuracy=r,
                format=0.0,
                t_step=t_step,
                t_sample=t_step / 4,
                t_reward=0.0,
                tokens=100,
                kl=0.0,
            )
            for i, r in enumerate(rewards)
        ]
        return {"stack": stack, "seed": seed, "steps": rows, "peak_rss_mb": 100.0 * (seed + 1)}

    runs = {
        "ours": [run("ours", s, [0.0] * 10 + [0.5] * 10, 0.2) for s in range(2)],
        "trl": [run("trl", s, [0.0] * 10 + [0.25] * 10, 0.8) for s in range(2)],
    }
    out = peer_stats.summarise(runs)
    assert out["stacks"]["ours"]["final_mean"] == pytest.approx(0.5)  # mean of the last 10 steps
    assert out["stacks"]["trl"]["final_mean"] == pytest.approx(0.25)
    sp = out["speed"]["trl"]
    # median step 0.2 vs 0.8 s -> 0.25; update = step - sampling = 0.15 vs 0.6 -> 0.25; tokens/s 500 vs 125
    assert sp["step_ratio"] == pytest.approx(0.25) and sp["update_ratio"] == pytest.approx(0.25)
    assert sp["tokens_ratio"] == pytest.approx(0.25) and sp["rss_ratio"] == pytest.approx(1.0)
    assert out["poi"]["ours>trl"]["p"] == 1.0 and out["poi"]["trl>ours"]["p"] == 0.0
    table = peer_stats.table(out)
    assert "| ours | 2 |" in table and "our median step = 0.25 x trl's; goal <= 0.5: met" in table


def test_seed_lists():
    assert peer_grpo.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert peer_grpo.parse_seeds("0,2,5") == [0, 2, 5]
    with pytest.raises(ValueError, match="'4-x'"):
        peer_grpo.parse_seeds("4-x")
