"""The ``grounding`` task (SegZero-style System-2 training, docs/design.md §3.9) on a tiny refCOCOg tree:
its batches show one image with the grounding prompt, its GT lives in the resized image's pixels, it scores
hand-made answers as the reward says, and one GRPO step of the tiny policy runs through the learner."""

import dataclasses

import numpy as np
import pytest

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, ModelSpec, OptimSpec, RunSpec
from omnir1_jax.data.masks import mask_to_box
from omnir1_jax.data.prompts import grounding_prompt
from omnir1_jax.policy import build_tokenizer
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks import make_task
from omnir1_jax.tasks.grounding import GroundingTask, target_answer
from tests.train._tiny import TINY_MODEL


def grounding_config(root: str, out_dir: str) -> ExperimentConfig:
    return ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="refcocog",
            root=root,
            split="train",
            task="grounding",
            batch_size=2,
            min_frames=1,
            max_frames=1,
            s1_max_pixels=16 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
        grpo=GRPOSpec(group_size=2, max_new_tokens=8, beta=0.04),
        optim=OptimSpec(lr=1e-3, weight_decay=0.0),
        run=RunSpec(out_dir=out_dir, steps=1, resume=False),
    )


@pytest.fixture(scope="module")
def setup(refcocog_tree, tmp_path_factory):
    root, _ = refcocog_tree
    cfg = grounding_config(root, str(tmp_path_factory.mktemp("run")))
    tok = build_tokenizer(cfg.model)
    task = make_task(cfg, tok)
    records = read_records(cfg.data)
    batch = next(task.batches(records, batch_size=2, seed=0))
    return cfg, tok, task, records, batch


def test_the_registry_builds_the_grounding_task_without_a_bridge(setup):
    cfg, _, task, records, _ = setup
    assert isinstance(task, GroundingTask) and task.name == "grounding"
    # the four SegZero terms, the release's think/answer format term and its length bonus (weights 1 as released)
    assert task.weights == {"format": 1.0, "iou": 1.0, "box": 1.0, "points": 1.0, "think_format": 1.0, "length": 1.0}
    assert sorted(r.expression for r in records) == ["a cat", "the cat on the left"]


def test_batches_show_one_image_with_the_grounding_prompt(setup):
    _, tok, _, records, batch = setup
    mi = batch["model_inputs"]
    assert "pixel_values" in mi and "pixel_values_videos" not in mi  # one image, not Figure 3's video
    assert sorted(batch["prompt"]) == sorted(grounding_prompt(r.expression) for r in records)
    assert batch["prompt"][0].startswith(f"Please find '{batch['expression'][0].lower()}' with bbox and points.")
    text = tok.decode(np.asarray(mi["input_ids"])[0])
    assert "<|vision_bos|>" in text and "<|IMAGE|>" in text and "VIDEO" not in text
    # the 20 x 28 image at a budget of 4..16 * 28 * 28 px: smart_resize scales it up to 56 x 84
    assert batch["resized_hw"].tolist() == [[56, 84], [56, 84]]
    assert np.asarray(mi["image_grid_thw"]).tolist() == [[1, 4, 6], [1, 4, 6]]


def test_gt_box_and_points_are_in_the_resized_images_pixels(setup):
    _, _, _, _, batch = setup
    for b in range(2):
        mask = np.asarray(batch["gt_masks"][b])[0]  # original resolution, 20 x 28
        sy, sx = 56 / mask.shape[0], 84 / mask.shape[1]
        want = mask_to_box(mask) * np.array([sx, sy, sx, sy])
        # nearest-neighbour resizing moves an edge by less than one source pixel
        assert np.all(np.abs(batch["gt_box"][b] - want) < np.array([sx, sy, sx, sy])), (batch["gt_box"][b], want)
        x1, y1, x2, y2 = batch["gt_box"][b]
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in batch["gt_points"][b])


def test_score_of_hand_made_answers(setup):
    _, _, task, _, batch = setup
    exact = [target_answer(batch["gt_box"][b], batch["gt_points"][b], "t") for b in range(2)]
    x1, y1, x2, y2 = (float(v) for v in batch["gt_box"][1])
    # a box 40 px to the right of the GT: mean coordinate error 20 -> box term (30 - 20) * 0.05 = 0.5; the box is
    # 10 px wide at most, so no overlap (IoU 0); points inside the shifted box, d = 40 -> (150 - 40) * 0.02 = 1
    p1, p2 = batch["gt_points"][1]
    shifted = (
        f'<think>t</think><answer>{{"bbox_2d": [{x1 + 40}, {y1}, {x2 + 40}, {y2}], '
        f'"points_1": [{p1[0] + 40}, {p1[1]}], "points_2": [{p2[0] + 40}, {p2[1]}]}}</answer>'
    )
    texts = [exact[0], "no answer", exact[1], shifted]  # rows: prompt 0 x 2 samples, prompt 1 x 2 samples
    scored = task.score(batch, texts, 2)
    assert x2 - x1 < 40
    # + 1 for the <think>...</think><answer>...</answer> format of three rows; no length bonus (short answers)
    np.testing.assert_allclose(scored.rewards, [4.4 + 1, 0.0, 4.4 + 1, 1.0 + 0.5 + 1.0 + 1], atol=1e-5)
    np.testing.assert_allclose(scored.components["box"], [1.0, 0.0, 1.0, 0.5], atol=1e-5)
    np.testing.assert_array_equal(scored.components["think_format"], [1, 0, 1, 1])
    np.testing.assert_array_equal(scored.components["length"], [0, 0, 0, 0])
    assert scored.stats == {"grounding/n_formatted": 3.0}
    assert task.sft_targets(batch) == [
        target_answer(batch["gt_box"][b], batch["gt_points"][b], task.cfg.sft.think) for b in range(2)
    ]


def test_length_bonus_and_weights_through_the_task(setup):
    """The release's length bonus: +1 for an answer with accuracy > 0.1 and 320..750 tokens (EOS included) when
    more than one answer of the batch has accuracy > 0.1; each extra term scaled by its grpo.segzero weight."""
    from omnir1_jax.rewards.segzero import SegZeroSpec

    cfg, tok, _, _, batch = setup
    exact = target_answer(batch["gt_box"][0], batch["gt_points"][0], "t")
    n_long, words = 0, 0
    while n_long < 400:  # lengthen the think until the answer has 400+ tokens (counted with the tokenizer itself)
        words += 20
        long_exact = exact.replace("<think>t</think>", "<think>" + " ".join(["the"] * words) + "</think>")
        n_long = len(tok(long_exact, add_special_tokens=False)["input_ids"]) + 1
    n_exact = len(tok(exact, add_special_tokens=False)["input_ids"]) + 1
    assert 320 <= n_long <= 750 and n_exact < 320
    texts = [long_exact, exact, "no answer", "no answer"]
    scored = make_task(cfg, tok).score(batch, texts, 2)
    np.testing.assert_array_equal(scored.components["length"], [1, 0, 0, 0])
    np.testing.assert_allclose(scored.rewards[:2], [4.4 + 1 + 1, 4.4 + 1], atol=1e-5)
    # only one answer with accuracy > 0.1 in the batch: no bonus at all
    alone = make_task(cfg, tok).score(batch, [long_exact, "x", "y", "z"], 2)
    assert alone.components["length"].tolist() == [0, 0, 0, 0]
    # weights 0.5 and 0 (and a range that excludes n_long): total = accuracy + 0.5 * think_format
    spec = SegZeroSpec(think_format=0.5, length=0.0, length_range=(1, n_long - 1))
    cfg2 = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, segzero=spec))
    task2 = make_task(cfg2, tok)
    scored2 = task2.score(batch, texts, 2)
    assert task2.weights["think_format"] == 0.5 and task2.weights["length"] == 0.0
    np.testing.assert_array_equal(scored2.components["length"], [0, 1, 0, 0])  # n_exact is inside 1..n_long-1
    np.testing.assert_allclose(scored2.rewards, [4.9, 4.9, 0.0, 0.0], atol=1e-5)


def test_one_grpo_step_of_the_tiny_policy_through_the_learner(setup, tmp_path):
    from tests.train._tiny import make_learner

    cfg = setup[0]
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out_dir=str(tmp_path)))
    learner = make_learner(cfg, None)
    try:
        (m,) = learner.train(1, progress=False)
    finally:
        learner.close()
    assert np.isfinite(m["loss"]) and np.isfinite(m["reward/total"])
    caps = {"format": 1.0, "iou": 1.4, "box": 1.0, "points": 1.0, "think_format": 1.0, "length": 1.0}
    for k, cap in caps.items():  # every term logged, within its range
        assert 0.0 <= m[f"reward/{k}_min"] <= m[f"reward/{k}"] <= m[f"reward/{k}_max"] <= cap
    # the total is the sum of the six terms (weights 1), row by row (so also in the mean)
    assert m["reward/total"] == pytest.approx(sum(m[f"reward/{k}"] for k in caps), abs=1e-5)
    assert m["grounding/n_formatted"] == pytest.approx(4 * m["reward/format"])
    assert len(learner.last_texts) == 4  # 2 prompts x group of 2


def test_grounding_prompt_is_the_released_template():
    # transcribed from the Omni-R1 release (src/omni_r1/load_datasets/segzero.py, QUESTION_TEMPLATE filled with
    # question.lower().strip(".") and its example answer); the sentences are joined without spaces there too
    want = (
        "Please find 'the cat on the left' with bbox and points.Compare the difference between objects and find "
        "the most closely matched one.Output the thinking process in <think> </think> and final answer in "
        "<answer> </answer> tags.Output the one bbox and points of two largest inscribed circles inside the "
        'interested object in JSON format.i.e., <think> thinking process here </think><answer>{"bbox_2d": '
        '[x1, y1, x2, y2], "points_1": [x3, y3], "points_2": [x4, y4]}</answer>'
    )
    assert grounding_prompt("The Cat on the left.") == want
