"""Fuzzing: parse_answer / total_reward never raise, stay in range, and cost linear work.

The fuzz answers are generated from a fixed seed; the linear-work check counts the characters the JSON decoder
examines and records every regular expression run, instead of timing anything.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from omnir1_jax.rewards import RewardWeights, extract_tag, parse_answer, total_reward
from omnir1_jax.rewards import keyframe as keyframe_mod
from omnir1_jax.rewards import parsing as parsing_mod

T, H, W = 8, 4, 4

_TOKENS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    " ",
    "\n",
    "\\",
    '"start_time"',
    '"end_time"',
    '"description"',
    '"00:01.5"',
    '"a cat"',
    "1e308",
    "9" * 400,
    "-1",
    "NaN",
    "Infinity",
    "null",
    "true",
    "//",
    "\x00",
    "\ud800",
    "红",
    '"moments"',
    "<answer>" * 3,
]


def _time(rng: random.Random):
    if rng.random() < 0.6:  # an ordinary time inside the 4 s clip, so that many answers are valid
        return rng.choice([f"00:0{rng.randint(0, 3)}.{rng.randint(0, 99):02d}", rng.uniform(0, 4)])
    return rng.choice(
        [
            f"{rng.randint(0, 99):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 99):02d}",
            rng.uniform(0, 10),
            rng.randint(0, 10),
            int("9" * rng.randint(300, 500)),
            1e308,
            -rng.uniform(0, 5),
            "1" * 40,
            " 00:02.5 ",
            f"{rng.randint(0, 9999)}:{rng.randint(0, 9999)}:{rng.randint(0, 999999)}.{rng.randint(0, 10**9)}",
            None,
            [1],
            {"t": 1},
            True,
            "",
            "00:03.5.1",
            "\u3000" * 50 + "00:01",
        ]
    )


def _answer(rng: random.Random) -> object:
    kind = rng.randrange(6)
    if kind == 0:  # token soup
        return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 60)))
    if kind == 5:
        return rng.choice(
            [
                None,
                7,
                b"<answer>{}</answer>",
                ["<answer>"],
                "<answer>" * rng.randint(1, 3000),
                "<answer>" + "[" * rng.randint(1, 3000) + "</answer>",
            ]
        )
    objs = [
        {"start_time": _time(rng), "end_time": _time(rng), "description": rng.choice(["a", " dog ", "猫", "", 5, None])}
        for _ in range(rng.randint(1, 5))
    ]
    body = json.dumps(objs if rng.random() < 0.5 else {"moments": objs}, allow_nan=True)
    text = f"<think>{rng.choice(['', 'x', '{'])}</think>\n<answer>{body}</answer>"
    if kind == 2:  # truncated
        text = text[: rng.randint(0, len(text))]
    elif kind == 3:  # a random character replaced
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(_TOKENS) + text[i + 1 :]
    return text


def _check_parsed(p):
    assert p.num_frames == T and len(p.keyframes) == len(p.descriptions)
    assert list(p.keyframes) == sorted(p.keyframes) and all(0 <= f < T for f in p.keyframes)
    assert p.valid == bool(p.keyframes) and (p.error is None) == p.valid
    assert all(isinstance(d, str) and d for d in p.descriptions)


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_fuzz_answers_never_raise_and_rewards_stay_in_range(preset):
    rng = random.Random(1406)
    nprng = np.random.default_rng(1406)
    gt = nprng.random((T, H, W)) < 0.5
    gt_boxes = [np.array([[0.0, 0.0, 2.0, 2.0]])] * T
    weights = RewardWeights(alpha_k=1.0, alpha_a=1.0, alpha_g=1.0)
    n_group, n_groups = 8, 64  # 512 answers per preset, 1,024 in all
    for _ in range(n_groups):
        comps = [_answer(rng) for _ in range(n_group)]
        answers = [parse_answer(c, T) for c in comps]
        for p in answers:
            _check_parsed(p)
        pred = nprng.random((n_group, T, H, W)) < 0.5
        pred_boxes = [{f: np.array([[0.0, 0.0, 1.0, 3.0]]) for f in range(T)} for _ in range(n_group)]
        total, c = total_reward(
            comps,
            num_frames=T,
            gt_masks=gt,
            gt_boxes=gt_boxes,
            pred_boxes=pred_boxes,
            pred_masks=pred,
            weights=weights,
            preset=preset,
        )
        assert all(np.all(np.isfinite(v)) for v in c.values()) and np.all(np.isfinite(total))
        m = np.asarray([len(p.keyframes) for p in answers], np.float32)
        valid = c["valid"] > 0
        assert np.array_equal(valid, [p.valid for p in answers])
        for name in ("format", "valid"):
            assert set(np.unique(c[name]).tolist()) <= {0.0, 1.0}
        for name in ("saliency", "alignment", "grounding"):
            assert np.all((c[name] >= 0) & (c[name] <= 1 + 1e-6)), name
        for name in ("diversity", "num", "saliency", "alignment", "grounding", "keyframe"):
            assert np.all(c[name][~valid] == 0), name  # docs/design.md §2.4: an invalid answer earns nothing but R_fmt
        if preset == "paper":
            assert np.all((c["num"] >= 0) & (c["num"] <= 1))
            # 0.25 M with no repeats, each of at most M - 1 repeats costs 0.45 (appendix B defaults)
            assert np.all(c["diversity"] <= 0.25 * m + 1e-5)
            assert np.all(c["diversity"] >= 0.25 * m - 0.45 * np.maximum(m - 1, 0) - 1e-5)
        else:
            # the release's R_num, unscaled: 0.4 K for K <= 4 (at most 1.6), else 0.4 (7 - K), with K <= T
            assert np.all((c["num"] <= 1.6 + 1e-6) & (c["num"] >= 0.4 * (7 - T) - 1e-6))
            assert np.all((c["structure"] >= 0) & (c["structure"] <= 1.6 + 1e-6))


def test_overflowing_times_are_invalid_not_exceptions():
    huge = "9" * 400
    p = parse_answer(f'<answer>{{"start_time": {huge}, "end_time": 1, "description": "a"}}</answer>', T)
    assert not p.valid and "unparseable time" in p.error
    # 1e308 s is a finite time past the clip: clamped to the last frame like any end past the clip
    p = parse_answer('<answer>{"start_time": 3, "end_time": 1e308, "description": "a"}</answer>', T)
    assert p.valid and p.keyframes == (6, 7)


def _reference_format(text: str) -> bool:  # the regex format_reward documents (fine on short strings)
    return re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text.strip(), re.DOTALL) is not None


def test_linear_tag_and_format_checks_agree_with_the_regexes():
    rng = random.Random(7)
    vocab = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "x", "<", ">", "/"]
    for _ in range(3000):
        s = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        m = re.search(r"<answer>(.*?)</answer>", s, re.DOTALL)
        assert extract_tag(s, "answer") == (m.group(1) if m else None), s
        assert keyframe_mod.format_reward([s])[0] == float(_reference_format(s)), s


class _Recorder:
    """Wraps the regex patterns / ``re`` module the reward code uses and records (pattern, subject length)."""

    def __init__(self, target, calls):
        self._target, self._calls = target, calls

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if name in ("search", "match", "fullmatch", "findall", "finditer", "sub"):

            def call(*args, **kwargs):
                if isinstance(self._target, re.Pattern):
                    pattern, subject = self._target.pattern, args[0]
                else:
                    pattern, subject = str(getattr(args[0], "pattern", args[0])), args[1]
                self._calls.append((pattern, len(subject) if isinstance(subject, str) else 0))
                return attr(*args, **kwargs)

            return call
        if name == "compile":
            return lambda *a, **k: _Recorder(attr(*a, **k), self._calls)
        return attr


def _instrument(monkeypatch):
    work = {"decode": 0, "regex": []}
    real = json.JSONDecoder.raw_decode

    def counting_raw_decode(self, s, idx=0):
        # cost model of the C decoder: a success examines its span; a failure examines up to the error position,
        # or the rest of the text for an unterminated string (reported at its opening quote) / positionless errors
        try:
            value, end = real(self, s, idx)
        except json.JSONDecodeError as e:
            work["decode"] += len(s) - idx if e.msg.startswith("Unterminated string") else e.pos - idx + 1
            raise
        except (ValueError, RecursionError):
            work["decode"] += len(s) - idx
            raise
        work["decode"] += end - idx
        return value, end

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counting_raw_decode)
    for mod in (parsing_mod, keyframe_mod):
        for name, value in list(vars(mod).items()):
            if isinstance(value, re.Pattern) or value is re:
                monkeypatch.setattr(mod, name, _Recorder(value, work["regex"]))
    return work


ADVERSARIAL_FAMILIES = {
    "unclosed answer tags": lambda n: "<answer>" * n,
    "think/answer pairs": lambda n: "<think>" + "</think><answer>" * n,
    "open brackets": lambda n: "<answer>" + "[" * n + "</answer>",
    "open braces": lambda n: "<answer>" + "{" * n + "</answer>",
    "nested unterminated string": lambda n: "<answer>" + "[" * 500 + '"' + "x" * n + "</answer>",
    "quote-brace soup": lambda n: "<answer>" + '{"a": "' * n + "</answer>",
    "truncated objects": lambda n: "<answer>" + '{"moments": [' + '{"start_time": 1, "end_time": 2, "x": [' * n,
}


@pytest.mark.parametrize("family", list(ADVERSARIAL_FAMILIES))
def test_parse_work_grows_linearly(monkeypatch, family):
    make = ADVERSARIAL_FAMILIES[family]
    work = _instrument(monkeypatch)
    per_char = []
    for n in (5_000, 10_000, 20_000):
        text = make(n)
        work["decode"], work["regex"][:] = 0, []
        parse_answer(text, T)
        total_reward([text], num_frames=T, gt_masks=np.ones((T, 2, 2), bool), pred_masks=np.ones((1, T, 2, 2), bool))
        # No backtracking regex (lazy ".*?") runs over more than a time string; every regex run is one pass.
        lazy = [(p, length) for p, length in work["regex"] if ".*?" in p and length > 64]
        assert not lazy, lazy
        assert len(work["regex"]) <= 4
        regex_chars = sum(length for _, length in work["regex"])
        per_char.append((work["decode"] + regex_chars) / len(text))
        # two parses (parse_answer, total_reward), each within the decoder's documented budget: failed attempts
        # examine at most 8x the body + 20,000 chars, plus the last failed attempt (<= 1x) and the successes
        # (disjoint spans, <= 1x); each regex run is <= 1x
        assert per_char[-1] <= 2 * (8 + 1 + 1 + 20_000 / len(text)) + 4, per_char
    assert per_char[2] <= per_char[0] * 1.25 + 0.5, per_char  # doubling twice does not raise the cost per char


def test_ten_megabyte_answer_is_bounded(monkeypatch):
    work = _instrument(monkeypatch)
    for text in ("<answer>" * 1_300_000, "<think></think><answer>" + "{[" * 5_000_000 + "</answer>"):
        assert len(text) >= 10_000_000
        p = parse_answer(text, T)
        assert not p.valid
        total_reward([text], num_frames=T, gt_masks=np.ones((T, 2, 2), bool), pred_masks=np.ones((1, T, 2, 2), bool))
        # only a 400,000-char prefix is searched for the answer and at most 200,000 chars of it decoded
        assert work["decode"] <= (8 + 2) * 200_000 + 20_000
        assert not [(p, n) for p, n in work["regex"] if ".*?" in p and n > 64]
