"""Evaluator without a bridge: QA accuracy through evaluate_policy, only process 0 writes, the headline."""

import json

import numpy as np
import pytest

from omnir1_jax.config import DataSpec, ExperimentConfig
from omnir1_jax.data.crossomni import CrossOmniRecord
from omnir1_jax.evaluation import evaluate_policy, evaluate_segmentation, headline
from tests.train._tiny import TINY_MODEL


def _qa_records():
    tasks = ["Au->Au", "Vi->Au", "Au->Vi", "Vi->Vi", "Te->Te"]
    return [
        CrossOmniRecord(
            id=f"q{i}",
            video=f"v{i}.mp4",
            audio=None,
            biography="b",
            question="?",
            options=(("A", "x"), ("B", "y"), ("C", "z"), ("D", "w")),
            answer="ABCDA"[i],
            task=tasks[i],
        )
        for i in range(5)
    ]


REPLIES = {
    "q0": "<answer>A</answer>",
    "q1": "<answer>C</answer>",
    "q2": "<answer>C</answer>",
    "q3": "no idea",
    "q4": "<answer>A</answer>",
}


def _cfg(out):
    return ExperimentConfig(data=DataSpec(dataset="crossomni", root=out, task="qa", batch_size=2))


def test_qa_accuracy_and_valid_answers_by_hand(tmp_path):
    res = evaluate_policy(
        _cfg(str(tmp_path)),
        None,
        None,
        _qa_records(),
        out_dir=str(tmp_path),
        tag="qa",
        progress=False,
        texts=lambda rs: [REPLIES[r.id] for r in rs],
    )
    # correct: q0 (A), q2 (C), q4 (A); q1 answered C for gold B; q3 gave no letter
    assert res["metric"] == "accuracy" and res["value"] == pytest.approx(3 / 5)
    assert res["valid_answers"] == pytest.approx(4 / 5) and res["count"] == 5
    rows = [json.loads(x) for x in (tmp_path / "qa" / "results.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == ["A", "C", "C", None, "A"]
    assert json.loads((tmp_path / "qa" / "summary.json").read_text())["value"] == pytest.approx(0.6)


def test_only_process_zero_writes_but_every_process_gets_the_numbers(tmp_path, monkeypatch):
    import jax

    first = evaluate_policy(
        _cfg(str(tmp_path)),
        None,
        None,
        _qa_records(),
        out_dir=str(tmp_path / "p0"),
        tag="qa",
        progress=False,
        texts=lambda rs: [REPLIES[r.id] for r in rs],
    )
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    other = evaluate_policy(
        _cfg(str(tmp_path)),
        None,
        None,
        _qa_records(),
        out_dir=str(tmp_path / "p1"),
        tag="qa",
        progress=False,
        texts=lambda rs: [REPLIES[r.id] for r in rs],
    )
    assert not (tmp_path / "p1").exists()
    assert other["value"] == first["value"] and other["table"] == first["table"]


def test_segmentation_write_false_leaves_no_file(tmp_path):
    from omnir1_jax.data import read_revos
    from omnir1_jax.data.synthetic import writer

    root = str(tmp_path / "w")
    writer.write_vos(root, 8, seed=2, height=32, width=48, min_frames=4, max_frames=5)
    recs = read_revos(root, "valid", dataset="synthetic")
    assert len(recs) >= 3

    class Pred:
        def __init__(self, masks):
            self.masks = masks

    def predict(rs):  # the first object's GT on even frames only
        for r in rs:
            gt = r.load_masks(list(range(r.num_frames)), 32, 48)
            gt[1::2] = False
            yield r, Pred(gt)

    a = evaluate_segmentation(recs, predict, str(tmp_path / "a"), progress=False, overlays=2)
    b = evaluate_segmentation(recs, predict, str(tmp_path / "b"), progress=False, overlays=2, write=False)
    assert not (tmp_path / "b").exists()
    assert a["table"] == b["table"] and a["count"] == b["count"] == len(recs)
    assert len(list((tmp_path / "a" / "overlays").iterdir())) == 2


def test_headline_of_each_kind():
    vos = {
        "referring": {"J": 0.5, "F": 0.7, "J&F": 0.6, "count": 1},
        "overall": {"J": 0.4, "F": 0.6, "J&F": 0.5, "count": 2},
    }
    assert headline("vos", vos) == {"metric": "J&F", "value": 0.5, "J&F": 0.5, "J": 0.4, "F": 0.6}
    avs = {
        "test_s": {"J": 0.2, "F": 0.4, "J&F": 0.3, "count": 2},
        "test_u": {"J": 0.6, "F": 0.8, "J&F": 0.7, "count": 3},
        "test_n": {"S": 0.1, "count": 1},
    }
    h = headline("refavs", avs)
    assert (h["J"], h["F"], h["J&F"]) == pytest.approx((0.4, 0.6, 0.5))
    assert headline("refavs", {"test_n": {"S": 0.25, "count": 4}}) == {"metric": "S", "value": 0.25}
    assert np.isnan(headline("vos", None)["value"])


def test_crossomni_with_the_tiny_policy_scores_its_own_greedy_answers(tmp_path):
    """The real System-1 path (pipeline batches -> policy.complete): every question answered once, each row's
    choice is the parse of its logged answer, and the accuracy is the fraction of those choices equal to gold."""
    from omnir1_jax.config import GRPOSpec, ModelSpec, RunSpec
    from omnir1_jax.crossomni.batches import read_split
    from omnir1_jax.evaluation.metrics.qa import extract_letter
    from omnir1_jax.policy import build_policy, build_tokenizer
    from tests.crossomni.fixtures import QUESTIONS, write_fixture

    root = str(tmp_path / "co")
    write_fixture(root)
    cfg = ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="crossomni",
            root=root,
            split="test",
            task="qa",
            batch_size=3,
            min_frames=2,
            max_frames=2,
            s1_max_pixels=4 * 784,
            s1_min_pixels=4 * 784,
        ),
        grpo=GRPOSpec(max_new_tokens=6),
        run=RunSpec(out_dir=str(tmp_path / "run")),
    )
    res = evaluate_policy(
        cfg,
        build_policy(cfg.model),
        build_tokenizer(cfg.model),
        read_split(cfg.data, "test"),
        out_dir=str(tmp_path / "run"),
        tag="qa",
        progress=False,
    )
    rows = [json.loads(x) for x in (tmp_path / "run" / "qa" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [q[0] for q in QUESTIONS]
    # the evaluator's choice: the record's own letters and option texts (the fixture's options are w, x, y, z)
    assert all(r["predicted"] == extract_letter(r["answer"], "ABCD", ["w", "x", "y", "z"]) for r in rows)
    gold = {q[0]: q[2] for q in QUESTIONS}
    assert res["value"] == pytest.approx(np.mean([r["predicted"] == gold[r["id"]] for r in rows]))
    assert res["valid_answers"] == pytest.approx(np.mean([r["predicted"] is not None for r in rows]))
