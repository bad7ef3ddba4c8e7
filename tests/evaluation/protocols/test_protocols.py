"""ReVOS / MeViS expression protocol and Ref-AVS metrics on hand-computed examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnir1_jax.evaluation.protocols import (
    MaskInputError,
    RefAVSAccumulator,
    RefAVSConfig,
    VOSAccumulator,
    expression_jf,
    merge_objects,
    refavs_fscore,
    refavs_iou,
    refavs_null_s,
    revos_subset,
)

# ---------------------------------------------------------------- ReVOS / MeViS


def _revos_example() -> VOSAccumulator:
    acc = VOSAccumulator()
    acc.add("v1/r1", "referring", 1, [1.0, 0.5], [0.5, 0.5])  # J .75, F .5
    acc.add("v1/s1", "reasoning", 2, [0.2], [0.4])  # J .2, F .4
    acc.add("v2/s2", "reasoning", 1, [0.4, 0.4, 0.4], [0.0, 0.0, 0.0])  # J .4, F 0
    return acc


def test_revos_overall_is_mean_of_subsets_not_pooled():
    s = _revos_example().summary()
    assert s["referring"] == pytest.approx({"J": 0.75, "F": 0.5, "J&F": 0.625, "count": 1})
    assert s["reasoning"] == pytest.approx({"J": 0.3, "F": 0.2, "J&F": 0.25, "count": 2})
    assert s["overall"]["J"] == pytest.approx(0.525)
    assert s["overall"]["F"] == pytest.approx(0.35)
    assert s["overall"]["J&F"] == pytest.approx(0.4375)
    assert s["overall"]["count"] == 3
    # the pooled mean over the three expressions is different: 0.375
    assert s["all"]["J&F"] == pytest.approx((0.45 + 0.3) / 2)
    assert s["single"] == pytest.approx({"J": 0.575, "F": 0.25, "J&F": 0.4125, "count": 2})
    assert s["multi"] == pytest.approx({"J": 0.2, "F": 0.4, "J&F": 0.3, "count": 1})


def test_revos_type2_excluded_and_mevis_pooled():
    acc = _revos_example()
    assert acc.add_revos("v3/x", 2, 1, [0.0], [0.0]) is None
    assert len(acc) == 3
    assert acc.add_revos("v3/y", 0, 1, [0.25], [0.25]).subset == "referring"
    assert acc.summary()["referring"]["J"] == pytest.approx(0.5)  # (0.75 + 0.25) / 2
    assert [revos_subset(t) for t in (0, 1, 2)] == ["referring", "reasoning", None]
    with pytest.raises(ValueError, match="type_id"):
        revos_subset(3)

    mevis = VOSAccumulator(overall_subsets=None)
    mevis.add("a", None, 1, [1.0, 0.0], [1.0, 1.0])
    mevis.add("b", None, 3, [0.5], [0.0])
    s = mevis.summary()
    assert s["overall"]["J"] == pytest.approx(0.5) and s["overall"]["F"] == pytest.approx(0.5)
    assert s["overall"] == s["all"]
    assert "referring" not in s


def test_expression_jf_merges_objects_and_averages_all_frames():
    a = np.zeros((3, 8, 8), bool)
    b = np.zeros((3, 8, 8), bool)
    a[0, 1:4, 1:4] = True  # object A visible on frame 0
    b[0, 5:7, 5:7] = True  # object B on frames 0 and 1
    b[1, 2:5, 2:5] = True
    target = merge_objects(np.stack([a, b]))
    np.testing.assert_array_equal(target, a | b)
    pred = np.zeros_like(target)
    pred[0] = a[0]  # frame 0 misses B (9 of 13 pixels), frame 1 misses B entirely, frame 2 empty = empty target
    j, f = expression_jf(target, pred)
    np.testing.assert_allclose(j, [9 / 13, 0.0, 1.0])
    assert f[1] == 0.0 and f[2] == 1.0
    j_jax, f_jax = expression_jf(target, pred, use_jax=True)
    np.testing.assert_allclose(j_jax, j, atol=1e-6, rtol=0)
    np.testing.assert_allclose(f_jax, f, atol=1e-6, rtol=0)
    acc = VOSAccumulator(overall_subsets=None)
    record = acc.add("e", None, 2, j, f)
    assert record.j == pytest.approx((9 / 13 + 1.0) / 3)
    assert record.num_frames == 3


def test_vos_accumulator_rejects_bad_input_and_writes_jsonl(tmp_path):
    acc = _revos_example()
    with pytest.raises(ValueError, match="already added"):
        acc.add("v1/r1", "referring", 1, [1.0], [1.0])
    with pytest.raises(ValueError, match="frames"):
        acc.add("z", "referring", 1, [1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        acc.add("z", "referring", 1, [np.nan], [1.0])
    with pytest.raises(ValueError, match="subset"):
        acc.add("z", "overall", 1, [1.0], [1.0])
    path = tmp_path / "revos.jsonl"
    acc.write_jsonl(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["expression_id"] for r in rows] == ["v1/r1", "v1/s1", "v2/s2"]
    assert rows[0]["J&F"] == pytest.approx(0.625) and rows[1]["num_objects"] == 2
    json.dumps(acc.summary())  # the summary is JSON-serialisable as is
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


# ---------------------------------------------------------------- Ref-AVS


def test_refavs_iou_empty_target_conventions():
    target = np.zeros((3, 4, 4), bool)
    pred = np.zeros((3, 4, 4), bool)
    target[0, :2, :2] = True  # 4 px
    pred[0, :2, :] = True  # 8 px, 4 shared -> 0.5
    pred[2, 0, :2] = True  # 2 px on an empty target
    np.testing.assert_allclose(refavs_iou(pred, target), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(refavs_iou(pred, target, "true_negative_fraction"), [0.5, 1.0, 14 / 16])


def _curve_bruteforce(prob, target, num=255, beta2=0.3):
    """The AVS F-measure spelt out with one full comparison per threshold (independent of the histogram trick)."""
    ths = np.linspace(0.0, 1.0 - 1e-10, num).astype(np.float32)
    curves = []
    for y, g in zip(prob, target):
        if g.sum() == 0:
            continue
        f = []
        for th in ths:
            pred = y >= th
            tp = (pred & g).sum()
            p = tp / pred.sum() if pred.sum() else 0.0
            r = tp / g.sum()
            f.append(0.0 if p == 0 and r == 0 else (1 + beta2) * p * r / (beta2 * p + r))
        curves.append(f)
    return float(np.mean(curves, axis=0).max()) if curves else 0.0


def test_refavs_fscore_is_max_of_mean_curve():
    prob = np.array([[[0.9, 0.6, 0.3, 0.0]], [[0.9, 0.6, 0.3, 0.0]], [[0.5, 0.5, 0.5, 0.5]]])
    target = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[0, 0, 0, 0]]], bool)  # frame 2: empty target, skipped
    # thresholds in (0.6, 0.9]: F = 0.8125 and 1 -> mean 0.90625 (each frame's own best is 1: mean-of-max = 1)
    assert refavs_fscore(prob, target) == pytest.approx(0.90625, abs=1e-12)
    assert refavs_fscore(prob[2:], target[2:]) == 0.0
    rng = np.random.default_rng(0)
    prob = rng.random((4, 9, 11))
    target = rng.random((4, 9, 11)) < 0.3
    target[1] = False
    assert refavs_fscore(prob, target) == pytest.approx(_curve_bruteforce(prob, target), abs=1e-12)


def test_refavs_fscore_binary_mask_uses_threshold_zero_too():
    target = np.zeros((1, 10, 10), bool)
    pred = np.zeros((1, 10, 10), bool)
    target[0, :2] = True  # 20 px
    pred[0, 1:3] = True  # 10 of them + 10 outside: P = R = 0.5
    assert refavs_fscore(pred.astype(float), target) == pytest.approx(0.5)
    target[0, :8] = True  # 80 px; prediction 10 px inside: F = 0.1625 / 0.425 ...
    pred[0] = False
    pred[0, 0] = True
    # ... but th_0 = 0 predicts all 100 px: P = 0.8, R = 1 -> F = 1.04 / 1.24, which is the maximum
    assert refavs_fscore(pred, target) == pytest.approx(1.04 / 1.24)


def test_refavs_null_s():
    pred = np.zeros((3, 4, 4), bool)
    pred[0, 0] = True  # 4 / 16
    pred[2, :2] = True  # 8 / 16
    assert refavs_null_s(pred) == pytest.approx(0.25)
    assert refavs_null_s(pred, sqrt=True) == pytest.approx(0.5)  # sqrt(12 / 48)
    assert refavs_null_s(np.zeros((2, 3, 3))) == 0.0


def test_refavs_accumulator_summary(tmp_path):
    acc = RefAVSAccumulator(RefAVSConfig.project())  # per-expression means (the release's: test_refavs_release.py)
    t = np.zeros((2, 4, 4), bool)
    t[:, :2, :2] = True
    acc.add("a", "test_s", t, t)  # perfect: J = F = 1
    p = np.zeros_like(t)
    acc.add("b", "test_s", p, t)  # empty prediction: J = 0; F = all-foreground at th_0: P = .25 -> .325 / 1.075
    acc.add("n", "test_n", t)  # null split: S = 4 / 16
    acc.add_scores("u", "test_u", 10, j=0.5, f=0.7)
    s = acc.summary()
    f_b = 0.325 / 1.075
    assert s["test_s"] == pytest.approx({"J": 0.5, "F": (1 + f_b) / 2, "J&F": (0.5 + (1 + f_b) / 2) / 2, "count": 2})
    assert s["test_n"] == pytest.approx({"S": 0.25, "count": 1})
    assert s["test_u"]["J&F"] == pytest.approx(0.6)
    release = RefAVSAccumulator(RefAVSConfig.release())
    release.add("n", "test_n", t)
    assert release.summary()["test_n"]["S"] == pytest.approx(0.5)
    acc.write_jsonl(tmp_path / "refavs.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "refavs.jsonl").read_text().splitlines()]
    assert rows[2] == {
        "expression_id": "n",
        "split": "test_n",
        "num_frames": 2,
        "S": 0.25,
        "fg_pixels": 8,
        "pixels": 32,
        "protocol": "project",
    }
    with pytest.raises(ValueError, match="split"):
        acc.add("x", "test", t, t)
    with pytest.raises(ValueError, match="needs a target"):
        acc.add("x", "test_u", t)
    with pytest.raises(MaskInputError, match="prob"):
        acc.add("x", "test_u", t, t, prob=np.full(t.shape, 1.5))
    with pytest.raises(ValueError, match="empty_gt"):
        RefAVSConfig(empty_gt="zero")
