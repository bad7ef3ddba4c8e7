"""The evaluation commands in the docstrings of the new training rows run to a summary with the tiny model
(``-m slow``): Omni-R1 Table 6's joint AVS + VOS and AVS-10400 rows on AVHBench's JUDGE subset, Table 1's SFT
baseline on Ref-AVS test_s. Each reads a fixture in the dataset's own layout."""

import json
import os

import numpy as np
import pytest

from tests.train._tiny import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY = [
    "model.checkpoint=None",
    "model.preset='tiny'",
    "model.dtype='float32'",
    "model.remat=False",
    f"model.overrides={TINY_MODEL!r}",
    "grpo.max_new_tokens=4",
    "data.min_frames=2",
    "data.max_frames=2",
    "data.s1_min_pixels=3136",
    "data.s1_max_pixels=3136",
    "data.batch_size=2",
    "data.workers=0",
    "bridge.grounder='synthetic'",
    "bridge.segmenter='synthetic'",
    "bridge.workers=1",
]


def _run(args):
    from omnir1_jax.evaluate import main

    assert main(args) == 0


@pytest.mark.slow
@pytest.mark.parametrize("row", ["table6.py:avs_vos", "table6.py:avs_10400"])
def test_table6_rows_evaluate_on_avhbench_judge(row, tmp_path):
    from omnir1_jax.crossomni.media import write_video
    from tests.data.test_data_avhbench import QUESTIONS, _write_release

    root = _write_release(tmp_path / "avh", videos=False)
    rng = np.random.default_rng(0)
    for vid in QUESTIONS:
        write_video(
            os.path.join(root, "video", f"{vid}.mp4"),
            rng.integers(0, 255, (4, 56, 56, 3), np.uint8),
            fps=2.0,
            audio=(0.1 * rng.standard_normal(16000)).astype(np.float32),
        )
    out = str(tmp_path / "out")
    args = [
        "--config",
        os.path.join(ROOT, "experiments", row),
        "--split",
        "judge",
        "--out",
        out,
        "--set",
        "data.dataset='avhbench'",
        "--set",
        "data.task='vos'",
        "--set",
        f"data.root={root!r}",
    ]
    for s in TINY:
        args += ["--set", s]
    _run(args)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    rows = [json.loads(x) for x in open(os.path.join(out, "results.jsonl"))]
    from omnir1_jax.data.avhbench import JUDGE_TASKS

    judge = sum(1 for entries in QUESTIONS.values() for e in entries if e["task"] in JUDGE_TASKS)
    assert s["done"] == s["total"] == len(rows) == judge
    acc = np.mean([r["predicted"] == r["gold"] for r in rows])
    assert s["table"]["overall"]["accuracy"] == pytest.approx(acc)


@pytest.mark.slow
def test_table1_sft_row_evaluates_on_refavs(tmp_path):
    from omnir1_jax.data.readers import read_refavs
    from omnir1_jax.data.synthetic import writer

    root = writer.write_avs(str(tmp_path / "avs"), 4, seed=0, height=56, width=84)
    out = str(tmp_path / "out")
    args = [
        "--config",
        os.path.join(ROOT, "experiments", "table1_sft_refavs.py"),
        "--split",
        "test_s",
        "--out",
        out,
        "--set",
        f"data.root={root!r}",
    ]
    for s in TINY:
        args += ["--set", s]
    _run(args)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    assert s["done"] == s["total"] == len(read_refavs(root, "test_s")) > 0
    assert s["protocol"]["name"] and os.path.isfile(os.path.join(out, "summary.md"))
