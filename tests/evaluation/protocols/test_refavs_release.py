"""Ref-AVS: the release's protocol against hand values and a torch transcription of the release's
test loop; ReVOS: VISA's per-expression rounding."""

import json

import numpy as np
import pytest

from omnir1_jax.evaluation.protocols import VOSAccumulator
from omnir1_jax.evaluation.protocols.refavs import RefAVSAccumulator, RefAVSConfig, fscore_thresholds


def test_thresholds_are_torch_float32_linspace_bit_for_bit():
    torch = pytest.importorskip("torch")
    for n in (255, 256, 100, 3, 2):
        want = torch.linspace(0, 1 - 1e-10, n).numpy()  # float32, the release's thlist
        np.testing.assert_array_equal(fscore_thresholds(n), want)
    # a float64 linspace cast to float32 differs in 10 of the 255
    naive = np.linspace(0.0, 1.0 - 1e-10, 255).astype(np.float32)
    assert int((naive != fscore_thresholds(255)).sum()) == 10


def _one(rows):
    return np.array(rows, bool).reshape(1, 2, 2)


# Five one-frame expressions on 2x2 frames (HW = 4); per-frame F curves by hand:
#   a: target 2 px, perfect   -> J 1; F curve: th_0 (all 4 px) P .5 R 1 -> 13/23, th > 0: 1
#   b: empty target, 1 px     -> J release 1 - 1/4 = .75, project 0; no F frame
#   c: target 1 px, empty     -> J 0; th_0: P .25 R 1 -> 13/43, th > 0: 0
#   d: target 4 px, perfect   -> J 1; F 1 at every threshold
#   e: target 2 px, 1 of them -> J .5; th_0: 13/23, th > 0: P 1 R .5 -> .65 / .8 = .8125
EXPR = {
    "a": (_one([1, 1, 0, 0]), _one([1, 1, 0, 0])),
    "b": (_one([1, 0, 0, 0]), _one([0, 0, 0, 0])),
    "c": (_one([0, 0, 0, 0]), _one([1, 0, 0, 0])),
    "d": (_one([1, 1, 1, 1]), _one([1, 1, 1, 1])),
    "e": (_one([1, 0, 0, 0]), _one([1, 1, 0, 0])),
}


def test_release_batches_of_four_by_hand():
    acc = RefAVSAccumulator()  # the default is the release protocol
    assert acc.config == RefAVSConfig.release() and acc.config.name == "release"
    for k, (p, t) in EXPR.items():
        acc.add(k, "test_s", p, t)
    s = acc.summary()["test_s"]
    # batch 1 (a b c d): J = mean(1, .75, 0, 1) = .6875; F = max_k mean over frames a, c, d:
    #   th_0: (13/23 + 13/43 + 1) / 3 = .6225, th > 0: (1 + 0 + 1) / 3 = 2/3 -> 2/3
    # batch 2 (e): J = .5, F = .8125. Split: means over the two batches.
    assert s["J"] == pytest.approx((0.6875 + 0.5) / 2, abs=1e-12)
    assert s["F"] == pytest.approx((2 / 3 + 0.8125) / 2, abs=1e-12)
    assert s["count"] == 5
    project = RefAVSAccumulator(RefAVSConfig.project())
    for k, (p, t) in EXPR.items():
        project.add(k, "test_s", p, t)
    s = project.summary()["test_s"]
    # per expression: J = (1 + 0 + 0 + 1 + .5) / 5; F = (1 + 0 + 13/43 + 1 + .8125) / 5
    assert s["J"] == pytest.approx(0.5, abs=1e-12)
    assert s["F"] == pytest.approx((1 + 0 + 13 / 43 + 1 + 0.8125) / 5, abs=1e-12)


def test_release_binarises_probabilities_at_0_4_for_j_and_0_5_for_s():
    prob = np.array([0.45, 0.45, 0.1, 0.9]).reshape(1, 2, 2)
    target = _one([1, 1, 0, 0])
    acc = RefAVSAccumulator()
    r = acc.add("p", "test_s", prob > 0.5, target, prob=prob)
    assert r.j == pytest.approx(2 / 3)  # > 0.4 keeps 3 px, 2 of them on the 2-px target
    proj = RefAVSAccumulator(RefAVSConfig.project()).add("p", "test_s", prob > 0.5, target, prob=prob)
    assert proj.j == pytest.approx(0.0)  # the project scores the binary prediction (1 px, off target)
    null_prob = np.array([0.45, 0.55, 0.1, 0.9]).reshape(1, 2, 2)
    n = acc.add("n", "test_n", null_prob > 0.4, prob=null_prob)
    assert n.s == pytest.approx(np.sqrt(2 / 4))  # > 0.5: 2 of 4 px


def test_release_null_s_pools_each_batch():
    # five null expressions, one 2x2 frame each, 0, 1, 2, 1, 4 predicted px
    counts = [0, 1, 2, 1, 4]
    release, project = RefAVSAccumulator(), RefAVSAccumulator(RefAVSConfig.project())
    for i, c in enumerate(counts):
        m = np.zeros((1, 2, 2), bool)
        m.reshape(-1)[:c] = True
        release.add(str(i), "test_n", m)
        project.add(str(i), "test_n", m)
    # batch 1: sqrt(4 / 16) = .5, batch 2: sqrt(4 / 4) = 1 -> .75; project: mean fraction (0+.25+.5+.25+1)/5 = .4
    assert release.summary()["test_n"]["S"] == pytest.approx(0.75)
    assert project.summary()["test_n"]["S"] == pytest.approx(0.4)


def _release_transcription(preds, targets, batch=4):
    """The Ref-AVS release's test loop written out in torch from its documented arithmetic: logits per batch of
    ``batch`` expressions, J = mask IoU of sigmoid > 0.4 over all frames (empty target: true negatives / HW),
    F = max over float32 linspace thresholds of the mean curve over the batch's non-empty frames, means over
    batches. Our binary masks are logits of +-30 (sigmoid exactly 1.0 / ~1e-13 in float32)."""
    import torch

    js, fs = [], []
    th = torch.linspace(0, 1 - 1e-10, 255)
    for s in range(0, len(preds), batch):
        p = torch.from_numpy(np.concatenate(preds[s : s + batch])).float() * 60 - 30
        g = torch.from_numpy(np.concatenate(targets[s : s + batch])).float()
        n, hw = p.shape[0], p.shape[1] * p.shape[2]
        b = (torch.sigmoid(p) > 0.4).float()
        inter, union = (b * g).sum((1, 2)), torch.maximum(b, g).sum((1, 2))
        empty = g.sum((1, 2)) == 0
        inter = torch.where(empty, ((1 - b) * (1 - g)).sum((1, 2)), inter)
        union = torch.where(empty, torch.full_like(union, hw), union)
        js.append(float((inter / union).sum() / n))
        y = torch.sigmoid(p)
        total, frames = torch.zeros(255, dtype=torch.float64), 0
        for i in range(n):
            if g[i].sum() == 0:
                continue
            pred = (y[i][None] >= th[:, None, None]).double()
            tp = (pred * g[i]).sum((1, 2))
            prec = torch.where(pred.sum((1, 2)) > 0, tp / pred.sum((1, 2)).clamp(min=1), torch.zeros(()))
            rec = tp / g[i].sum()
            f = torch.nan_to_num(1.3 * prec * rec / (0.3 * prec + rec))
            total, frames = total + f, frames + 1
        fs.append(float((total / frames).max()) if frames else 0.0)
    return float(np.mean(js)), float(np.mean(fs))


def test_release_summary_matches_a_torch_transcription_of_the_release():
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    preds, targets = [], []
    acc = RefAVSAccumulator()
    for i in range(7):  # two batches: 4 + 3 expressions of 3 frames each, some frames with an empty target
        t = rng.random((3, 6, 7)) < 0.3
        t[rng.integers(0, 3)] = False
        p = t ^ (rng.random((3, 6, 7)) < 0.2)
        preds.append(p)
        targets.append(t)
        acc.add(f"x{i}", "test_u", p, t)
    j, f = _release_transcription(preds, targets)
    s = acc.summary()["test_u"]
    assert s["J"] == pytest.approx(j, abs=1e-6) and s["F"] == pytest.approx(f, abs=1e-6)


def test_every_refavs_row_names_its_protocol(tmp_path):
    acc = RefAVSAccumulator()
    acc.add("a", "test_s", *EXPR["a"])
    acc.write_jsonl(tmp_path / "r.jsonl")
    (row,) = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert row["protocol"] == "release" and row["J_frames"] == [1.0] and row["F_count"] == 1
    assert RefAVSConfig.release().describe()["name"] == "release"
    assert RefAVSConfig.project().describe() == {
        "name": "project",
        "empty_gt": "binary",
        "null_s_sqrt": False,
        "j_threshold": None,
        "s_threshold": None,
        "batch_size": None,
        "num_thresholds": 255,
        "beta2": 0.3,
    }
    assert RefAVSConfig(batch_size=2).name == "custom"
    with pytest.raises(ValueError, match="protocol"):
        RefAVSConfig.named("paper")
    scores_only = RefAVSAccumulator()
    scores_only.add_scores("u", "test_u", 10, j=0.5, f=0.7)
    with pytest.raises(ValueError, match="j_frames"):
        scores_only.summary()


def test_visa_rounding_per_expression():
    # J means 0.123456 and 0.98765 -> VISA: 12.35 and 98.77 (percent, 2 decimals) -> mean 55.56 %;
    # exact: (12.3456 + 98.765) / 2 = 55.5553 %.
    j = ([0.123456], [0.98765])
    exact, visa = VOSAccumulator(overall_subsets=None), VOSAccumulator(overall_subsets=None, visa_rounding=True)
    for i, jj in enumerate(j):
        exact.add(str(i), None, 1, jj, [0.5])
        visa.add(str(i), None, 1, jj, [0.5])
    assert 100 * visa.summary()["all"]["J"] == pytest.approx(55.56, abs=1e-9)
    assert 100 * exact.summary()["all"]["J"] == pytest.approx(55.5553, abs=1e-9)
    assert visa.describe()["name"] == "visa_rounded" and exact.describe()["name"] == "exact"
