"""benchmarks/step_model.py (a model of the 7B step, not a measurement): its arithmetic against hand computations
and published figures, and the overlapped step against the synchronous one."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks import step_model  # noqa: E402


@pytest.mark.parametrize(
    "bridge_s, tpu_s, groups, expect",
    [
        # ceil(10 / 3) = 4 GPUs when work splits; 1.25 s per group: 3 GPUs take ceil(8 / 3) x 1.25 = 3.75 s > 3,
        # 4 take 2 x 1.25 = 2.5 s
        (10.0, 3.0, 8, (4, 4)),
        # exactly at the TPU step: 4 GPUs x 2 groups x 1.5 s = 3.0 s
        (12.0, 3.0, 8, (4, 4)),
        # 14 / 8 = 1.75 s per group > a 1.5 s TPU step: no number of whole-group GPUs; ceil(14 / 1.5) = 10 if split
        (14.0, 1.5, 8, (10, None)),
        # the bridge faster than the TPUs on one GPU
        (2.0, 3.0, 8, (1, 1)),
    ],
)
def test_gpus_to_keep_the_tpus_busy_on_hand_computed_inputs(bridge_s, tpu_s, groups, expect):
    assert step_model.gpus_to_keep_busy(bridge_s, tpu_s, groups) == expect


def test_the_7b_text_decoder_has_qwen2_5_7b_s_published_non_embedding_parameters():
    """Qwen2.5-7B (the Thinker's decoder): 6.53 B non-embedding parameters (model card); the weight matrices alone
    are 28 x (2 x 3584^2 + 2 x 3584 x 512 + 3 x 3584 x 18944) = 6,525,288,448, lm_head 3584 x 152064."""
    from omnir1_jax.models.qwen2_5_omni import qwen2_5_omni_7b

    k = step_model.qwen_kernels(qwen2_5_omni_7b())
    assert k["text"] == 28 * (2 * 3584**2 + 2 * 3584 * 512 + 3 * 3584 * 18944) == 6_525_288_448
    assert k["head"] == 544_997_376
    assert abs(k["text"] / 1e9 - 6.53) < 0.01


def test_the_hiera_l_trunk_is_most_of_sam2_1_large():
    """The modelled trunk's weights (12 d^2 per block) against SAM 2.1 hiera_large's published 224.4 M in all
    (the rest: memory attention ~6 M, mask decoder, memory encoder, prompt encoder, neck)."""
    _, params = step_model.hiera_flops("hiera_l", 1024)
    assert 0.9 * 224.4e6 < params < 224.4e6


def test_overlapped_is_never_slower_than_synchronous_and_enough_gpus_make_the_tpus_the_bound():
    m = step_model.main(["--json", os.devnull])
    slices, gpus = ("v5p-8", "v5p-64"), ("H100", "H200")
    assert {(r["slice"], r["gpu"]) for r in m["steps"]} == {(s, g) for s in slices for g in gpus}
    for r in m["steps"]:
        for at in ("one_gpu", "at_gpus_split", "at_recipe_workers"):
            sync, over = r[at]["sync"], r[at]["overlapped"]
            assert r["tpu_s"] <= over <= sync <= 2 * over
        # with the GPUs the model asks for (work split), the bridge keeps up: the step is the TPU side alone
        assert r["at_gpus_split"]["overlapped"] == r["tpu_s"]
        # one GPU fewer would not keep up
        if r["gpus_split"] > 1:
            assert r["bridge_gpu_s"] / (r["gpus_split"] - 1) > r["tpu_s"]
    # the per-group counts of the recipe: 8 rollouts x 4 keyframes, each tracked over 2 sweeps of 23 frames
    assert m["per_group"] == {"queries": 32, "objects": 32, "object_frames": 32 * 2 * 23}
