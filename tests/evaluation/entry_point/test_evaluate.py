"""python -m omnir1_jax.evaluate: protocol by hand on the written predictions, perfect predictions, resuming."""

import dataclasses
import json
import os

import numpy as np
import pytest

from omnir1_jax import evaluate
from omnir1_jax.data import read_revos
from omnir1_jax.data.synthetic import writer
from omnir1_jax.evaluation.metrics import db_eval_boundary, db_eval_iou
from omnir1_jax.evaluation.results import RESULTS, read_masks, write_summary


@dataclasses.dataclass
class _Pred:
    masks: np.ndarray

    def to_json(self):
        return {"answer": "scripted"}


def _gt(rec):
    from PIL import Image

    with Image.open(rec.frame_paths[0]) as im:
        w, h = im.size
    return rec.load_masks(list(range(rec.num_frames)), h, w)


def _noisy(rec):
    """GT shifted right by 3 px on even frames, emptied on every third frame: non-trivial J and F."""
    gt = _gt(rec)
    out = gt.copy()
    out[::2] = np.roll(gt[::2], 3, axis=2)
    out[::3] = False
    return out


class _Predictor:
    def __init__(self, fn, stop_after=None):
        self.fn, self.stop_after, self.seen = fn, stop_after, []

    def __call__(self, records):
        for i, r in enumerate(records):
            if self.stop_after is not None and i == self.stop_after:
                raise KeyboardInterrupt("simulated interruption")
            self.seen.append(r.key)
            yield r, _Pred(self.fn(r))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "world")
    writer.write_vos(root, 15, seed=3, height=40, width=56, min_frames=5, max_frames=7)
    recs = read_revos(root, "valid", dataset="synthetic")
    assert len({r.type_id for r in recs}) == 2 and len(recs) >= 4
    return recs


def test_perfect_prediction_scores_exactly_one(records, tmp_path):
    res = evaluate.evaluate_segmentation(records, _Predictor(_gt), str(tmp_path), progress=False)
    for group, s in res["table"].items():
        assert (s["J"], s["F"], s["J&F"]) == (1.0, 1.0, 1.0), group
    assert res["count"] == len(records)


def test_table_equals_protocol_by_hand_on_written_pngs(records, tmp_path):
    res = evaluate.evaluate_segmentation(records, _Predictor(_noisy), str(tmp_path), progress=False)
    per = {}
    for rec in records:
        pred = read_masks(str(tmp_path / "predictions" / rec.video_id / rec.exp_id), rec.frame_names)
        np.testing.assert_array_equal(pred, _noisy(rec))
        gt = _gt(rec)
        j = np.mean([db_eval_iou(gt[t], pred[t]) for t in range(rec.num_frames)])
        f = np.mean([db_eval_boundary(gt[t], pred[t]) for t in range(rec.num_frames)])
        per[rec.key] = (rec.type_id, len(rec.anno_ids), j, f)
    subsets = {}
    for name, tid in (("referring", 0), ("reasoning", 1)):
        js = [v[2] for v in per.values() if v[0] == tid]
        fs = [v[3] for v in per.values() if v[0] == tid]
        subsets[name] = (np.mean(js), np.mean(fs))
        assert res["table"][name]["J"] == pytest.approx(subsets[name][0], abs=1e-6)
        assert res["table"][name]["F"] == pytest.approx(subsets[name][1], abs=1e-6)
    overall_j = np.mean([subsets[s][0] for s in subsets])
    overall_f = np.mean([subsets[s][1] for s in subsets])
    assert res["table"]["overall"]["J&F"] == pytest.approx((overall_j + overall_f) / 2, abs=1e-6)
    single = [v for v in per.values() if v[1] == 1]
    assert res["table"]["single"]["J"] == pytest.approx(np.mean([v[2] for v in single]), abs=1e-6)
    assert 0.1 < res["table"]["overall"]["J&F"] < 0.95  # the noise makes it non-trivial
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["table"] == res["table"]
    assert summary["protocol"]["name"] == "exact"
    assert (tmp_path / "summary.md").read_text().startswith("Protocol: exact\n\n| group | J&F")
    # VISA's rounding: each expression's J and F rounded to 2 decimals in percent before the means (hand: round
    # the per-expression means computed above)
    (tmp_path / "visa").mkdir()
    visa = write_summary(
        records,
        {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()},
        str(tmp_path / "visa"),
        "vos",
        visa_rounding=True,
    )
    js = [round(100 * v[2], 2) for v in per.values() if v[0] == 0]
    assert 100 * visa["table"]["referring"]["J"] == pytest.approx(np.mean(js), abs=1e-6)
    assert visa["protocol"]["name"] == "visa_rounded"
    assert (tmp_path / "visa" / "summary.md").read_text().startswith("Protocol: visa_rounded")


def test_resuming_an_interrupted_evaluation_gives_the_same_table(records, tmp_path):
    full = evaluate.evaluate_segmentation(records, _Predictor(_noisy), str(tmp_path / "full"), progress=False)
    out = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_segmentation(records, _Predictor(_noisy, stop_after=3), out, progress=False)
    with open(os.path.join(out, RESULTS), "a") as f:
        f.write('{"id": "torn')  # a write cut short by the interruption
    second = _Predictor(_noisy)
    res = evaluate.evaluate_segmentation(records, second, out, progress=False)
    assert second.seen == [r.key for r in records[3:]]  # only the missing expressions were predicted again
    assert res["table"] == full["table"] and res["done"] == len(records)
    lines = open(os.path.join(out, RESULTS)).read().splitlines()
    assert len(lines) == len(records) and all(json.loads(x) for x in lines)


def test_max_items_then_rest_and_no_resume(records, tmp_path):
    part = evaluate.evaluate_segmentation(records, _Predictor(_gt), str(tmp_path), max_items=2, progress=False)
    assert part["done"] == 2 and part["count"] == 2
    again = _Predictor(_noisy)
    res = evaluate.evaluate_segmentation(records, again, str(tmp_path), resume=False, progress=False)
    assert len(again.seen) == len(records) and res["table"]["overall"]["J&F"] < 1.0


def test_prediction_with_wrong_frame_count_raises_naming_the_expression(records, tmp_path):
    bad = _Predictor(lambda r: _gt(r)[:-1])
    with pytest.raises(ValueError, match="predicted frames"):
        evaluate.evaluate_segmentation(records, bad, str(tmp_path), progress=False)


def test_refavs_rows_and_null_split(tmp_path):
    from omnir1_jax.data import read_refavs
    from omnir1_jax.evaluation.protocols.refavs import refavs_fscore, refavs_iou, refavs_null_s

    root = str(tmp_path / "avs")
    writer.write_avs(root, 6, seed=1, height=40, width=56)
    seen = read_refavs(root, "test_s")
    null = read_refavs(root, "test_n")
    recs = seen + null
    if not null:
        pytest.skip("the synthetic AVS world produced no null rows")
    res = evaluate.evaluate_segmentation(
        recs, _Predictor(_noisy), str(tmp_path / "out"), kind="refavs", progress=False, refavs_protocol="project"
    )
    js = [refavs_iou(_noisy(r), _gt(r)).mean() for r in seen]
    fs = [refavs_fscore(_noisy(r).astype(float), _gt(r)) for r in seen]
    assert res["table"]["test_s"]["J"] == pytest.approx(np.mean(js), abs=1e-12)
    assert res["table"]["test_s"]["F"] == pytest.approx(np.mean(fs), abs=1e-12)
    assert res["table"]["test_n"]["S"] == pytest.approx(np.mean([refavs_null_s(_noisy(r)) for r in null]), abs=1e-12)
    assert res["protocol"]["name"] == "project"
    # the default: the release's protocol, stated in every output file; resuming under another one is refused
    out = tmp_path / "release"
    rel = evaluate.evaluate_segmentation(recs, _Predictor(_noisy), str(out), kind="refavs", progress=False)
    assert rel["protocol"]["name"] == "release"
    assert json.loads((out / "summary.json").read_text())["protocol"]["batch_size"] == 4
    assert (out / "summary.md").read_text().startswith("Protocol: release")
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in rows} == {"release"}
    from omnir1_jax.evaluation.protocols.refavs import RefAVSAccumulator

    acc = RefAVSAccumulator()
    for r in recs:
        acc.add(r.key, r.split, _noisy(r), None if r.split == "test_n" else _gt(r))
    want = acc.summary()
    for split in want:
        assert rel["table"][split] == pytest.approx(want[split], abs=1e-12)
    with pytest.raises(ValueError, match="no-resume"):
        evaluate.evaluate_segmentation(
            recs, _Predictor(_noisy), str(out), kind="refavs", progress=False, refavs_protocol="project"
        )
