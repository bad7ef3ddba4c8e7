"""benchmarks/bench_step_inputs.py (GPU measurements of the step model's inputs): the GPU it reads the peak of, and
(slow, CPU settings) what each part counts: the SAM2 group's tracked object-frames, the grounder's image tokens
(Qwen2.5-VL's resize rule, by hand) and answer lengths, and the update's model FLOPs and loss."""

from __future__ import annotations

import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks import bench_step_inputs as bench  # noqa: E402


def test_the_gpu_is_read_off_its_device_name():
    # NVIDIA's datasheets (SXM): 989 TFLOP/s dense bf16 both; 3.35 TB/s (H100), 4.8 TB/s (H200)
    h200 = bench.gpu_peak("NVIDIA H200")
    assert h200["name"] == "H200" and h200["peak"] == 989e12 and h200["bw"] == 4.8e12
    h100 = bench.gpu_peak("NVIDIA H100 80GB HBM3")
    assert h100["name"] == "H100" and h100["bw"] == 3.35e12
    assert bench.gpu_peak("NVIDIA A100-SXM4-80GB") is None and bench.gpu_peak("cpu") is None


def _args(*extra: str):
    argv = ["--tiny", *extra]
    args = bench._parser().parse_args(argv)
    bench._tiny_defaults(args, argv)
    return args


@pytest.mark.slow
@pytest.mark.torch
def test_sam2_part_counts_every_tracked_object_on_every_frame_but_its_prompt_frame():
    row = bench.part_sam2(_args("--rollouts", "2", "--keyframes", "2", "--frames", "4"))
    # 2 rollouts x 2 keyframes, one (noisy, so distinct) box each: 4 objects; 2 sweeps x 3 frames each
    assert row["detections"] == 4 and row["objects_tracked"] == 4 and row["object_frames"] == 2 * 4 * 3
    assert (row["arch"], row["image_size"]) == ("hiera_t", 256)
    assert row["model_group_s"] is None and row["fraction_of_peak"] is None  # no GPU peak on a CPU
    assert row["group_s"] > 0 and row["encoder_frames_per_s"] > 0


@pytest.mark.slow
@pytest.mark.torch
def test_grounder_part_runs_the_bridge_backend_with_fixed_answer_lengths():
    row = bench.part_grounder(_args("--answer-tokens", "5", "--grounder-batch", "2"))
    assert row["keyframes"] == 2 and row["answers"] == 2 and row["rows_per_batch"] == 2
    assert row["answer_tokens"] == [5]  # every answer exactly --answer-tokens long
    # a 56 x 84 frame under the 16 x 28 x 28 px minimum: scaled by sqrt(12544 / 4704) and rounded up to 28 px,
    # 112 x 140 px = 8 x 10 patches of 14 px, 2 x 2 merged per token
    beta = math.sqrt(16 * 28 * 28 / (56 * 84))
    h, w = math.ceil(56 * beta / 28) * 28, math.ceil(84 * beta / 28) * 28
    assert (h, w) == (112, 140) and row["image_tokens"] == (h // 14) * (w // 14) // 4 == 20
    assert row["prompt_tokens"] > row["image_tokens"]


@pytest.mark.slow
def test_update_part_times_the_learners_update_on_its_shapes():
    row = bench.part_update(_args("--repeats", "3"))
    # 2 prompts x 2 rollouts of 8 tokens after 64 prompt tokens (2 video frames); 3 timed updates after the compile
    assert (row["rows"], row["prompt_len"], row["completion_len"], row["frames"]) == (4, 64, 8, 2)
    assert len(row["update_s_all"]) == len(row["losses"]) == 3
    assert row["update_s"] == sorted(row["update_s_all"])[1]  # the median of three
    assert all(math.isfinite(x) for x in row["losses"])
    assert row["model"] == "tiny" and row["mfu"] is None  # no GPU peak on a CPU
