"""extract_rationale: System 1's <think> text for System 2's prompt; never raises on answers."""

import pytest

from omnir1_jax.rewards import extract_rationale

ANSWER = (
    "<think> Two red circles look alike.\n The one that appears second\tmoves left. </think>"
    '<answer>[{"start_time": "00:01.0", "end_time": "00:02.0", "description": "red circle"}]</answer>'
)


def test_think_text_with_whitespace_collapsed():
    assert extract_rationale(ANSWER) == "Two red circles look alike. The one that appears second moves left."


@pytest.mark.parametrize(
    "max_chars, expected",
    [
        (19, "aaaa bbbb cccc dddd"),  # fits
        (12, "aaaa bbbb"),  # "aaaa bbbb cc" ends mid-word; the space at 9 >= 12 * 3 // 4 = 9
        (10, "aaaa bbbb"),  # "aaaa bbbb " -> trailing space dropped
        (9, "aaaa bbbb"),  # ends exactly before a space
        (16, "aaaa bbbb cccc"),  # "aaaa bbbb cccc d": space at 14 >= 12
        (3, "aaa"),  # no space in the cut: the word is cut
    ],
)
def test_cut_to_the_budget_by_hand(max_chars, expected):
    got = extract_rationale("<think>aaaa bbbb cccc dddd</think><answer>x</answer>", max_chars)
    assert got == expected and len(got) <= max_chars


def test_cut_keeps_a_word_when_the_last_space_is_too_early():
    # budget 8: "ab cdefghijk" -> "ab cdefg"; the only space (2) is before 8 * 3 // 4 = 6, so the word is cut
    assert extract_rationale("<think>ab cdefghijk</think>", 8) == "ab cdefg"


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>cut off mid sentence", "cut off mid sentence"),  # never closed (max_new_tokens)
        ("<think>partial <answer>[1]</answer>", "partial"),  # unclosed, then an answer
        ("no tags at all", ""),
        ("<answer>[1]</answer>", ""),
        ("</think> only a closing tag", ""),
        ("<think></think><answer>x</answer>", ""),
        ("<think>first</think><think>second</think>", "first"),
        (None, ""),
        (123, ""),
        (["<think>x</think>"], ""),
        (b"<think>x</think>", ""),
    ],
)
def test_malformed_answers_never_raise(completion, expected):
    assert extract_rationale(completion, 50) == expected


def test_huge_completion_is_bounded_and_within_budget():
    text = "<think>" + "word " * 200_000 + "<think>" * 1000
    got = extract_rationale(text, 64)
    assert len(got) <= 64 and got.startswith("word word") and got.endswith("word")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_budget_is_a_value_error(bad):
    with pytest.raises(ValueError, match="max_chars"):
        extract_rationale(ANSWER, bad)
