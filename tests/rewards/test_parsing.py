"""parse_answer: known cases map to the right frames; adversarial completions never raise."""

import json

import pytest

from omnir1_jax.rewards import parse_answer, parse_description, parse_time


def _wrap(body: str) -> str:
    return f"<think>reasoning</think><answer>{body}</answer>"


def _obj(start, end, desc="the red circle"):
    return json.dumps({"start_time": start, "end_time": end, "description": desc})


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("00:03.5", 3.5),
        ("00:03.50", 3.5),
        ("00:03.05", 3.05),
        ("01:02.25", 62.25),
        ("00:07", 7.0),
        ("1:00:00.5", 3600.5),
        ("3.5", 3.5),
        (4, 4.0),
        (2.5, 2.5),
    ],
)
def test_parse_time_decimal_fraction(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-00:01.0", "ab:cd", "", "00:03.5.1", None, True, [1], float("nan"), float("inf")])
def test_parse_time_rejects(text):
    assert parse_time(text) is None


def test_known_time_maps_to_frame():
    # docs/design.md §2.2: 00:03.5 at 2 fps is frame 7 (the released code read it as 3.05 s -> frame 6).
    p = parse_answer(_wrap(_obj("00:03.5", "00:03.5")), num_frames=10)
    assert p.valid and p.keyframes == (7,) and p.descriptions == ("the red circle",)


def test_interval_covers_every_frame_inclusive_and_sorted_with_repeats():
    body = (
        _obj("00:02.00", "00:03.00", "b") + "\n" + _obj("00:00.00", "00:01.00", "a") + _obj("00:01.0", "00:01.0", "c")
    )
    p = parse_answer(_wrap(body), num_frames=12)
    assert p.keyframes == (0, 1, 2, 2, 4, 5, 6)
    assert p.descriptions == ("a", "a", "a", "c", "b", "b", "b")
    assert p.unique_keyframes == (0, 1, 2, 4, 5, 6)
    assert p.queries() == [(0, "a"), (1, "a"), (2, "a"), (4, "b"), (5, "b"), (6, "b")]
    assert p.queries(max_keyframes=2) == [(0, "a"), (1, "a")]


def test_list_nested_and_wrapped_objects():
    items = [
        {"start_time": "00:00.50", "end_time": "00:00.50", "description": "blue {square}"},
        {"start_time": "00:04.00", "end_time": "00:04.00", "description": "x", "extra": {"a": [1, {"b": 2}]}},
    ]
    p = parse_answer(_wrap(json.dumps(items)), num_frames=10)
    assert p.keyframes == (1, 8) and p.descriptions == ("blue {square}", "x")
    p = parse_answer(_wrap(json.dumps({"moments": items})), num_frames=10)
    assert p.keyframes == (1, 8)


def test_end_past_clip_is_clamped_start_past_clip_is_invalid():
    p = parse_answer(_wrap(_obj("00:04.00", "00:59.00")), num_frames=10)
    assert p.keyframes == (8, 9)
    p = parse_answer(_wrap(_obj("00:06.00", "00:07.00")), num_frames=10)  # clip is 5 s long
    assert not p.valid and "past the clip end" in p.error
    p = parse_answer(_wrap(_obj("00:05.00", "00:05.00")), num_frames=10)  # exactly the end -> last frame
    assert p.keyframes == (9,)


ADVERSARIAL = [
    "",
    "no tags at all",
    "<think>x</think>",
    "<answer>",
    "<answer></answer>",
    "<answer>{</answer>",
    '<answer>{"start_time": "00:01.00", "end_time": "00:02.00", "description": "trunc',
    '<answer>{"start_time": "00:01.00", "end_time": "00:02.00", "description": "a"</answer>',
    '<answer>{"start_time": 1, "end_time": "x", "description": "a"}</answer>',
    '<answer>{"start_time": null, "end_time": null, "description": null}</answer>',
    '<answer>{"start_time": "00:02.00", "end_time": "00:01.00", "description": "a"}</answer>',
    '<answer>{"start_time": "00:01.00", "end_time": "00:02.00", "description": 42}</answer>',
    '<answer>{"start_time": "00:01.00", "end_time": "00:02.00", "description": ""}</answer>',
    '<answer>{"start_time": "00:01.00", "end_time": "00:02.00"}</answer>',
    '<answer>{"start_time": ["00:01"], "end_time": {"t": 1}, "description": ["a"]}</answer>',
    '<answer>[1, 2, "three", null, true]</answer>',
    '<answer>"just a string"</answer>',
    "<answer>" + "{" * 5000 + "</answer>",
    "<answer>" + "[" * 5000 + "]" * 5000 + "</answer>",
    '<answer>{"start_time": "99999999:00.00", "end_time": "99999999:00.00", "description": "a"}</answer>',
    '<answer>{"start_time": ' + "9" * 5000 + ', "end_time": 1, "description": "a"}</answer>',
    '<answer>{"start_time": 1e999, "end_time": 1e999, "description": "a"}</answer>',
    '<answer>{"start_time": NaN, "end_time": Infinity, "description": "a"}</answer>',
    '<answer>{"start_time": -1, "end_time": -0.5, "description": "a"}</answer>',
    '<answer>{"start_time": "０１:００", "end_time": "00:02.00", "description": "a"}</answer>',
    "<answer>\x00\x01\x02{}\ud800</answer>",
    "<answer>" + '{"a": 1}' * 3000 + "</answer>",
    '<answer>{"start_time": "00:01.00", "end_time": "00:01.00", "description": "a", "description": 5}</answer>',
    '<answer>{"start_time": true, "end_time": false, "description": "a"}</answer>',
    None,
    12345,
    b"<answer>{}</answer>",
    ["<answer>"],
    "<answer>" + "x" * 1_000_000 + "</answer>",
]


@pytest.mark.parametrize("completion", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_completions_never_raise(completion):
    p = parse_answer(completion, num_frames=16)
    assert not p.valid and p.keyframes == () and p.descriptions == ()
    assert isinstance(p.error, str) and p.error


def test_valid_item_survives_garbage_around_it():
    body = 'Sure! {"broken": ] here is: ' + _obj("00:01.00", "00:01.00") + " // another duration\n{trailing"
    p = parse_answer(_wrap(body), num_frames=8)
    assert p.valid and p.keyframes == (2,)
    assert len(p.items) == 1


def test_unicode_description_is_kept():
    p = parse_answer(_wrap(_obj("00:01.00", "00:02.00", "红色的圆 🔴")), num_frames=16)
    assert p.valid and p.keyframes == (2, 3, 4) and p.descriptions[0] == "红色的圆 🔴"


def test_mixed_valid_and_invalid_items():
    body = _obj("00:02.00", "00:01.00", "bad") + _obj("00:00.00", "00:00.00", "good")
    p = parse_answer(_wrap(body), num_frames=8)
    assert p.valid and p.keyframes == (0,) and [it.valid for it in p.items] == [False, True]


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        parse_answer("x", num_frames=0)


def test_parse_description():
    assert parse_description("<think>x</think><answer> The cello </answer>") == "The cello"
    assert parse_description('<answer>{"description": "the violin"}</answer>') == "the violin"
    assert parse_description("<answer>   </answer>") is None
    assert parse_description(None) is None
