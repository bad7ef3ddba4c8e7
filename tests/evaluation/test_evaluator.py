"""The one evaluator end to end: scripted System-1 answers + the synthetic bridge subprocess, J&F recomputed
here with the DAVIS numpy reference on the very masks the bridge returned, one bridge request per expression."""

import json
import os

import numpy as np
import pytest

from omnir1_jax.config import BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, ModelSpec, RunSpec
from omnir1_jax.data import read_revos
from omnir1_jax.data.synthetic import writer
from omnir1_jax.evaluation import evaluate_policy
from omnir1_jax.evaluation.metrics import db_eval_boundary, db_eval_iou
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.testing.tokenizer import build_tiny_tokenizer
from tests.train._tiny import TINY_MODEL

pytestmark = pytest.mark.torch  # the bridge subprocess imports the PyTorch side

H, W = 48, 72


class CountingClient:
    """Forwards to the real bridge client; keeps every request and its future (the masks the bridge sent)."""

    def __init__(self, inner):
        self.inner, self.requests = inner, []

    def submit_group(self, clip, rollouts, deadline_s=None):
        fut = self.inner.submit_group(clip, rollouts, deadline_s)
        self.requests.append((clip, rollouts, fut))
        return fut


def _answer(description: str) -> str:
    return (
        '<think>it is there</think><answer>[{"start_time": "00:00.00", "end_time": "00:00.50", '
        f'"description": "{description}"}}]</answer>'
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("evaluator") / "world")
    writer.write_vos(root, 8, seed=3, height=H, width=W, min_frames=5, max_frames=7)
    recs = read_revos(root, "valid", dataset="synthetic")
    assert {r.type_id for r in recs} == {0, 1} and len(recs) >= 4
    return root, recs


@pytest.fixture(scope="module")
def bridge(world, tmp_path_factory):
    b = open_bridge(
        BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        str(tmp_path_factory.mktemp("bridge")),
        data_roots=[world[0]],
        wait_s=120,
    )
    yield b
    b.close()


def _cfg(root, out):
    return ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="synthetic",
            root=root,
            split="valid",
            batch_size=2,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
            prompt="short",
        ),
        grpo=GRPOSpec(max_new_tokens=8),
        run=RunSpec(out_dir=out),
    )


def test_jf_equals_the_davis_reference_on_the_bridge_masks_with_one_request_each(world, bridge, tmp_path):
    root, recs = world
    # every third answer does not parse (no moment: empty masks); the others name the expression's words
    script = {
        r.key: ("<answer>no json here</answer>" if i % 3 == 2 else _answer(r.expression)) for i, r in enumerate(recs)
    }
    client = CountingClient(bridge.client)
    res = evaluate_policy(
        _cfg(root, str(tmp_path)),
        None,
        build_tiny_tokenizer(),
        recs,
        client=client,
        out_dir=str(tmp_path),
        tag="before",
        overlays=2,
        progress=False,
        texts=lambda rs: [script[r.key] for r in rs],
    )
    out = tmp_path / "before"
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(r.key for r in recs)
    # one bridge request per expression: the overlays were drawn without asking again
    assert len(client.requests) == len(recs)
    by_key = {r.key: r for r in recs}
    per = {}
    for row, (_, rollouts, fut) in zip(rows, client.requests):  # rows are appended in request order
        rec = by_key[row["id"]]
        pred = np.asarray(fut.result().rollouts[0].masks, bool)
        assert pred.shape == (rec.num_frames, H, W)
        # 0.0-0.5 s at 2 fps = clip frames 0 and 1, sent as full-video frames linspace(0, L-1, 4)[:2]
        positions = np.linspace(0, rec.num_frames - 1, 4).astype(int)[:2].tolist()
        expected = [] if script[rec.key].startswith("<answer>no") else positions
        assert [k.frame_idx for k in rollouts[0]] == expected
        gt = rec.load_masks(list(range(rec.num_frames)), H, W)
        j = np.mean([db_eval_iou(gt[t], pred[t]) for t in range(rec.num_frames)])
        f = np.mean([db_eval_boundary(gt[t], pred[t]) for t in range(rec.num_frames)])
        per[rec.key] = (rec.type_id, j, f)
    subsets = []
    for tid in (0, 1):  # ReVOS: overall = mean of the referring and reasoning subset means
        subsets.append(
            (np.mean([v[1] for v in per.values() if v[0] == tid]), np.mean([v[2] for v in per.values() if v[0] == tid]))
        )
    j, f = np.mean([s[0] for s in subsets]), np.mean([s[1] for s in subsets])
    assert res["metric"] == "J&F"
    assert res["J"] == pytest.approx(j, abs=1e-6) and res["F"] == pytest.approx(f, abs=1e-6)
    assert res["J&F"] == pytest.approx((j + f) / 2, abs=1e-6) and res["value"] == res["J&F"]
    assert 0.05 < res["J&F"] < 0.95  # the unparsed third makes it non-trivial
    assert res["count"] == len(recs)
    assert res["valid_answers"] == pytest.approx(np.mean([i % 3 != 2 for i in range(len(recs))]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["J&F"] == pytest.approx(res["J&F"]) and summary["table"] == res["table"]
    # training scores with the dataset's default (exact, unrounded means) and says so
    assert res["protocol"]["name"] == summary["protocol"]["name"] == "exact"
    assert (out / "summary.md").read_text().startswith("Protocol: exact\n\n| group | J&F")
    assert len(os.listdir(out / "overlays")) == 2


def test_refavs_is_scored_with_the_release_protocol_by_default(bridge, tmp_path):
    """Training's Ref-AVS evaluation uses the dataset's default protocol (the Ref-AVS release's), recomputed here
    on the masks the bridge returned, and states it in the result, summary.json, summary.md and every row."""
    from omnir1_jax.data import read_refavs
    from omnir1_jax.evaluation.protocols.refavs import RefAVSAccumulator, RefAVSConfig

    root = str(tmp_path / "avs")
    writer.write_avs(root, 4, seed=1, height=40, width=56)
    recs = read_refavs(root, "test_s") + read_refavs(root, "test_n")
    assert len(recs) >= 5  # more than one release batch of 4 expressions
    cfg = ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="refavs",
            root=root,
            split="test_s",
            batch_size=2,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
            workers=0,
        ),
        grpo=GRPOSpec(max_new_tokens=8),
        run=RunSpec(out_dir=str(tmp_path)),
    )
    # answers the synthetic grounder can act on: the colour and shape of the target's first object from the
    # world's facts (null expressions: the video's first object, a false positive that makes S non-zero)
    with open(os.path.join(root, writer.ORACLE_FILE)) as f:
        videos = json.load(f)["videos"]

    def describe(rec):
        v = videos[rec.video_id]
        objs = v["expressions"][rec.exp_id]["obj_id"] or [v["objects"][0]["obj_id"]]
        return next(o["description"] for o in v["objects"] if o["obj_id"] == objs[0])

    client = CountingClient(bridge.client)
    res = evaluate_policy(
        cfg,
        None,
        build_tiny_tokenizer(),
        recs,
        client=client,
        out_dir=str(tmp_path),
        tag="avs",
        overlays=0,
        progress=False,
        texts=lambda rs: [f"<answer>{describe(r)}</answer>" for r in rs],
    )
    out = tmp_path / "avs"
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(client.requests) == len(recs) == len(rows)
    by_key = {r.key: r for r in recs}
    scored = {}
    for row, (_, _, fut) in zip(rows, client.requests):  # rows are appended in request order
        rec = by_key[row["id"]]
        pred = np.asarray(fut.result().rollouts[0].masks, bool)
        gt = None if rec.split == "test_n" else rec.load_masks(list(range(rec.num_frames)), *pred.shape[1:])
        scored[rec.key] = (rec.split, pred, gt)
    # the release averages over batches of 4 expressions taken in the records' order (the summary's order)
    ordered = RefAVSAccumulator(RefAVSConfig.release())
    for rec in recs:
        ordered.add(rec.key, *scored[rec.key])
    want = ordered.summary()
    assert set(res["table"]) == set(want)
    for split in want:
        assert res["table"][split] == pytest.approx(want[split], abs=1e-12)
    assert res["J&F"] == pytest.approx(want["test_s"]["J&F"], abs=1e-12)
    assert res["protocol"]["name"] == "release" and res["protocol"]["batch_size"] == 4
    assert json.loads((out / "summary.json").read_text())["protocol"]["name"] == "release"
    assert (out / "summary.md").read_text().startswith("Protocol: release\n\n| split |")
    assert {r["protocol"] for r in rows} == {"release"}
    # not the project's per-expression protocol (sqrt-pooled S differs clearly on the false positives)
    project = RefAVSAccumulator(RefAVSConfig.project())
    for rec in recs:
        project.add(rec.key, *scored[rec.key])
    assert 0.5 < res["J"] < 1.0 and want["test_n"]["S"] > 0
    assert abs(res["table"]["test_n"]["S"] - project.summary()["test_n"]["S"]) > 0.01


def test_max_items_and_records_without_masks(world, bridge, tmp_path):
    import dataclasses

    root, recs = world
    no_gt = dataclasses.replace(recs[0], masks=None)
    client = CountingClient(bridge.client)
    res = evaluate_policy(
        _cfg(root, str(tmp_path)),
        None,
        build_tiny_tokenizer(),
        [no_gt] + recs[1:],
        client=client,
        out_dir=str(tmp_path),
        tag="t",
        max_items=2,
        overlays=0,
        progress=False,
        texts=lambda rs: [_answer(r.expression) for r in rs],
    )
    assert res["count"] == res["total"] == 2 and len(client.requests) == 2  # the record without GT is skipped
    rows = [json.loads(x) for x in (tmp_path / "t" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(r.key for r in recs[1:3])
    assert not (tmp_path / "t" / "overlays").exists()


def test_vos_records_without_a_client_raise_a_clear_error(world, tmp_path):
    root, recs = world
    with pytest.raises(ValueError, match="bridge client"):
        evaluate_policy(
            _cfg(root, str(tmp_path)),
            None,
            build_tiny_tokenizer(),
            recs,
            out_dir=str(tmp_path),
            tag="x",
            progress=False,
            texts=lambda rs: ["" for _ in rs],
        )


def test_evaluate_driver_with_the_tiny_policy_resumes_and_draws_overlays(world, bridge, tmp_path):
    """``omnir1_jax.evaluate.evaluate`` on the synthetic split with the real (tiny, random) System 1: predictions
    PNGs and one overlay per new expression asked for, one bridge request per expression, a resumed second call
    predicts only the rest."""
    from omnir1_jax import evaluate
    from omnir1_jax.evaluation.results import read_masks

    root, recs = world
    cfg = _cfg(root, str(tmp_path))
    client = CountingClient(bridge.client)
    out = tmp_path / "ev"
    first = evaluate.evaluate(cfg, "valid", out_dir=str(out), client=client, max_items=2, overlays=1, progress=False)
    assert first["done"] == 2 and len(client.requests) == 2
    assert len(os.listdir(out / "overlays")) == 1
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    for row, (_, _, fut) in zip(rows, client.requests):
        rec = next(r for r in recs if r.key == row["id"])
        np.testing.assert_array_equal(
            read_masks(str(out / "predictions" / rec.video_id / rec.exp_id), rec.frame_names),
            fut.result().rollouts[0].masks,
        )
    second = evaluate.evaluate(cfg, "valid", out_dir=str(out), client=client, progress=False)
    assert second["done"] == len(recs) and len(client.requests) == len(recs)


def test_the_predictor_prompts_with_the_trained_number_of_keyframes(world, bridge, tmp_path, monkeypatch):
    """``grpo.num_keyframes`` = 3: the evaluation's prompts ask for exactly 3 moments, as in training."""
    import dataclasses

    from omnir1_jax.evaluation import two_system

    root, recs = world
    prompts = []
    real = two_system.predict_batch

    def spy(policy, tokenizer, client, batch, clips, **kw):  # the real call, its prompts kept
        prompts.extend(batch["prompt"])
        return real(policy, tokenizer, client, batch, clips, **kw)

    monkeypatch.setattr(two_system, "predict_batch", spy)
    base = _cfg(root, str(tmp_path))
    for k, tag in ((3, "k3"), (None, "free")):
        prompts.clear()
        cfg = dataclasses.replace(base, grpo=dataclasses.replace(base.grpo, num_keyframes=k))
        evaluate_policy(
            cfg,
            None,
            build_tiny_tokenizer(),
            recs,
            client=bridge.client,
            out_dir=str(tmp_path),
            tag=tag,
            max_items=2,
            overlays=0,
            progress=False,
            texts=lambda rs: [_answer(r.expression) for r in rs],
        )
        assert len(prompts) == 2
        if k == 3:
            assert all("Select exactly 3 moments" in p for p in prompts), prompts[0]
        else:
            assert not any("exactly" in p for p in prompts), prompts[0]
