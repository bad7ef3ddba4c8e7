"""Training-pipeline throughput on synthetic 480x854 videos, beside one tiny-model training step.

Run: ``.venv/bin/python benchmarks/bench_data.py [--videos 6] [--batches 6] [--workers 0 1 2]``

Prints (1) clips/s of the Grain training pipeline (frame decode, GT masks, System-1 view at <= 128*28*28
pixels per frame, prompt, tokenisation, batching) with 0, 1 and 2 worker processes; (2) the per-clip System-1
preprocessing time of this package's numpy path beside transformers' ``Qwen2_5OmniProcessor`` on the same
frames (the torch reference), with their ratio; (3) the time of one training step (forward + backward +
AdamW) of the tiny Thinker config on one of those batches, so you can see whether the input pipeline keeps up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _pipeline_rate(records, tok, workers, batches, batch_size, seed=0):
    # lazy: the pipelines pull in grain and jax
    from omnir1_jax.data.pipeline import PipelineConfig, build_pipeline

    cfg = PipelineConfig(batch_size=batch_size, seed=seed, num_workers=workers, num_epochs=None, pad_to_multiple=64)
    it = iter(build_pipeline(records, tok, cfg))
    try:
        t0 = time.perf_counter()
        first = next(it)  # includes worker start-up
        t1 = time.perf_counter()
        for _ in range(batches):
            next(it)
        t2 = time.perf_counter()
    finally:
        it.close()
    return first, t1 - t0, batches * batch_size / (t2 - t1)


def _reference_ratio(records, tok, n_clips=4):
    """Per-clip S1 preprocessing: this package (numpy/PIL) vs Qwen2_5OmniProcessor (torch), same frames."""
    from transformers import Qwen2_5OmniProcessor, Qwen2VLVideoProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from omnir1_jax.data import prompts, text, vision
    from omnir1_jax.data.transforms import load_frame, sample_frame_indices

    proc = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessorPil(),
        video_processor=Qwen2VLVideoProcessor(cap_pixels_per_frame=False),
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tok,
    )
    size = {"shortest_edge": vision.S1_MIN_PIXELS, "longest_edge": vision.S1_MAX_PIXELS}
    ours, ref = [], []
    for rec in records[:n_clips]:
        idx = sample_frame_indices(rec.num_frames, 24)
        frames = np.stack([load_frame(rec.frame_paths[i]) for i in idx])
        chat = tok.apply_chat_template(
            prompts.user_message(prompts.vos_prompt(rec.expression, len(idx)), video=True),
            tokenize=False,
            add_generation_prompt=True,
        )
        t0 = time.perf_counter()
        v = vision.video_view(frames)
        text.encode_with_placeholders(tok, chat, video_grid_thw=v["video_grid_thw"], video_second_per_grid=[1.0])
        t1 = time.perf_counter()
        proc(
            text=[chat],
            videos=[frames],
            return_tensors="np",
            videos_kwargs=dict(size=size, do_sample_frames=False, fps=2.0),
        )
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        ref.append(t2 - t1)
    return statistics.median(ours), statistics.median(ref)


def _train_step_time(batch, repeats=3):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from omnir1_jax.models.qwen2_5_omni.config import tiny
    from omnir1_jax.models.qwen2_5_omni.thinker import init_model, prepare_inputs

    cfg = tiny()
    model = init_model(cfg, seed=0)
    opt = nnx.Optimizer(model, optax.adamw(1e-6, weight_decay=0.01), wrt=nnx.Param)
    inputs = prepare_inputs(cfg, **batch["model_inputs"])

    @nnx.jit
    def step(model, opt, inputs):
        def loss_fn(model):
            logits = model.forward(inputs).logits[:, :-1].astype(jnp.float32)
            tgt = inputs.input_ids[:, 1:]
            m = inputs.attention_mask[:, 1:].astype(jnp.float32)
            ll = jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1)[..., 0]
            return -(ll * m).sum() / m.sum()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    t0 = time.perf_counter()
    jax.block_until_ready(step(model, opt, inputs))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(model, opt, inputs))
        times.append(time.perf_counter() - t0)
    return compile_s, statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--batches", type=int, default=6, help="timed batches per worker setting (after one warm-up batch)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-reference", action="store_true", help="skip the transformers (torch) comparison")
    ap.add_argument("--no-step", action="store_true", help="skip the tiny-model training step")
    args = ap.parse_args()

    # lazy: grain and jax load once the arguments are parsed
    from omnir1_jax.data.readers import read_revos
    from omnir1_jax.data.synthetic.writer import write_vos
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = write_vos(os.path.join(tmp, "syn"), args.videos, seed=0, height=480, width=854)
        print(
            f"synthetic world: {args.videos} videos of 480x854, 24-48 frames, written in {time.perf_counter() - t0:.1f} s"  # noqa: E501
        )
        records = read_revos(root, "train", dataset="synthetic")
        print(f"{len(records)} training expressions; batch size {args.batch_size}, {args.batches} timed batches\n")
        print("| workers | first batch (incl. start-up) s | clips/s |")
        print("| --- | --- | --- |")
        batch = None
        for w in args.workers:
            first, start_s, rate = _pipeline_rate(records, tok, w, args.batches, args.batch_size)
            batch = batch or first
            print(f"| {w} | {start_s:.2f} | {rate:.2f} |")
        mi = batch["model_inputs"]
        print(
            f"\nbatch: input_ids {mi['input_ids'].shape}, pixel_values_videos {mi['pixel_values_videos'].shape}, "
            f"video_grid_thw {mi['video_grid_thw'].tolist()}"
        )
        if not args.no_reference:
            ours, ref = _reference_ratio(records, tok)
            print(
                f"\nS1 view + tokenisation per 24-frame clip: omnir1_jax {ours * 1e3:.0f} ms, "
                f"transformers Qwen2_5OmniProcessor {ref * 1e3:.0f} ms, ratio ref/ours {ref / ours:.2f}"
            )
        if not args.no_step:
            try:
                compile_s, step_s = _train_step_time(batch)
                print(
                    f"\ntiny Thinker training step (fwd+bwd+AdamW) on that batch: {step_s:.2f} s "
                    f"(first call incl. compile {compile_s:.1f} s) -> {args.batch_size / step_s:.2f} clips/s consumed"
                )
            except Exception as e:
                print(f"\nTODO(step time): tiny Thinker training step unavailable: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
