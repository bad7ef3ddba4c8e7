"""Benchmark: the Flax Thinker policy vs transformers (PyTorch) on the same weights, side by side.

Config: hidden 512, 8 layers, 8 heads / 4 kv heads, vocab 8192, float32 on both sides; the weights are written
once with ``to_hf`` and loaded by both. P prompts of ``--prompt-len`` random tokens, N samples each.

1. Decode, one GRPO batch of P prompts x N samples x G new tokens (default 8 x 8 x 128), no EOS, so both sides
   produce exactly P*N*G tokens with temperature 1, no top-k / top-p.
   - ours: ``generate(model, prompt, num_samples=N)``: one jit-compiled program (prefill once per prompt, the
     KV cache repeated N times, a ``while_loop`` over G steps; q/k/v and gate/up as fused matmuls).
   - reference: ``transformers`` ``model.generate(do_sample=True, num_return_sequences=N, min_new_tokens=G,
     max_new_tokens=G, top_k=0, top_p=1.0)`` under ``torch.no_grad()`` (it prefills all P*N rows).
   Both are warmed up first (our compile and transformers' first call, which is several times slower than
   the following ones, are reported apart), then timed alternately ``--repeats`` times; the best of each.
2. Update, forward + backward of the GRPO loss (on-policy ratio, k3 KL with beta 0.04, seq-mean-token-mean)
   on the P*N rows of prompt + completion (completions all G tokens, mask all ones), steady state:
   - reference: the transformers model in train mode on the full [P*N, prompt + G] rows (logits for every
     position, as the standard ``model(input_ids).logits``), ``log_softmax`` + gather of the G completion
     positions, the same loss transcribed in torch, ``loss.backward()`` (autograd, all parameters).
   - ours, ``grouped`` (default): ``jax.value_and_grad`` of ``omnir1_jax.rl.grpo_loss`` over
     ``group_completion_logprobs(model, repeat_prompt(prompt, N), completions, mask, group_size=N)``: each
     prompt runs once and its N completions attend to its keys / values (mathematically the same log-probs and
     gradients; tested to 1e-5 in tests/models/test_qwen2_5_omni_fast_paths.py); ``lm_head`` only on the G
     predicting positions.
   - ours, ``full`` (``--update-paths grouped,full``): the same with ``completion_logprobs`` on full rows, i.e.
     the same token count as the reference.
   Compile time is reported apart; then JAX and torch steps alternate ``--repeats`` times; the best of each.
3. ``--mfu`` (needs a GPU): forward + backward of a 7B-shaped text stack (28 layers, hidden 3584) with random
   bf16 weights; model FLOPs utilisation = 6 * params * tokens / time / peak FLOP/s (``--peak-tflops``).

The machine running this may be shared: compare the ratios printed by one run, not absolute times across runs.

    python benchmarks/bench_policy.py [--prompts 8 --samples 8 --new-tokens 128 --prompt-len 32 --repeats 3]
    python benchmarks/bench_policy.py --mfu --peak-tflops 989   # H100 SXM bf16 dense
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.models.qwen2_5_omni import (
    AudioConfig,
    Qwen2_5OmniConfig,
    TextConfig,
    VisionConfig,
    completion_logprobs,
    from_hf,
    generate,
    group_completion_logprobs,
    init_model,
    prepare_inputs,
    repeat_prompt,
    to_hf,
)
from omnir1_jax.rl import grpo_loss


def small_config(hidden=512, layers=8, vocab=8192) -> Qwen2_5OmniConfig:
    heads = hidden // 64
    return Qwen2_5OmniConfig(
        text=TextConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=int(hidden * 2.75),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads // 2,
            rope_theta=1e6,
            mrope_section=(8, 12, 12),
        ),
        vision=VisionConfig(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=hidden,
            fullatt_block_indexes=(0,),
        ),
        audio=AudioConfig(
            encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32, output_dim=hidden
        ),
        audio_token_id=3,
        audio_start_token_id=4,
        audio_end_token_id=5,
        vision_start_token_id=9,
        vision_end_token_id=10,
        image_token_id=12,
        video_token_id=13,
        user_token_id=1,
    )


def timed_pair(jax_fn, ref_fn, repeats):
    """Alternate the two callables ``repeats`` times; best wall time of each (both already warmed up)."""
    a, b = float("inf"), float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax_fn()
        a = min(a, time.perf_counter() - t)
        t = time.perf_counter()
        ref_fn()
        b = min(b, time.perf_counter() - t)
    return a, b


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def torch_grpo_loss(torch, logps, ref, adv, mask, eps=0.2, beta=0.04):
    """The same GRPO loss as omnir1_jax.rl.grpo_loss (on-policy ratio, k3 KL, seq-mean-token-mean)."""
    old = logps.detach()
    ratio = torch.exp(torch.clamp(logps - old, -20.0, 20.0))
    pg = -torch.minimum(ratio * adv[:, None], torch.clamp(ratio, 1 - eps, 1 + eps) * adv[:, None])
    d = ref - logps
    kl = torch.exp(d) - d - 1
    per = (pg + beta * kl) * mask
    return (per.sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def bench_cpu(args):
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = small_config(args.hidden, args.layers)
    p, n, g, t = args.prompts, args.samples, args.new_tokens, args.prompt_len
    with tempfile.TemporaryDirectory() as d:
        to_hf(init_model(cfg, seed=0), d, overwrite=True)
        model = from_hf(d)
        hf = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(d).float().eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(20, cfg.text.vocab_size, size=(p, t))
    prompt = dict(input_ids=ids, attention_mask=np.ones_like(ids))
    print(
        f"config: hidden {args.hidden}, {args.layers} layers, vocab {cfg.text.vocab_size}; "
        f"{p} prompts x {n} samples x {g} new tokens, prompt {t} tokens"
    )

    # ---- decode
    key = jax.random.key(0)

    def jax_gen():
        generate(model, prompt, max_new_tokens=g, num_samples=n, key=key).tokens.block_until_ready()

    t0 = time.perf_counter()
    jax_gen()
    compile_s = time.perf_counter() - t0
    pt = {k: torch.from_numpy(v) for k, v in prompt.items()}
    torch.manual_seed(0)

    def hf_gen():
        with torch.no_grad():
            out = hf.generate(
                **pt,
                do_sample=True,
                num_return_sequences=n,
                max_new_tokens=g,
                min_new_tokens=g,
                top_k=0,
                top_p=1.0,
                temperature=1.0,
            )
        assert out.shape == (p * n, t + g)

    t0 = time.perf_counter()
    hf_gen()
    hf_first = time.perf_counter() - t0
    jax_s, hf_s = timed_pair(jax_gen, hf_gen, args.repeats)
    toks = p * n * g
    print(
        f"decode  jax {toks / jax_s:9.1f} tok/s ({jax_s:.2f} s; first call incl. compile {compile_s:.1f} s) | "
        f"transformers {toks / hf_s:9.1f} tok/s ({hf_s:.2f} s; first call {hf_first:.1f} s) | "
        f"ratio {hf_s / jax_s:.2f}x",
        flush=True,
    )

    # ---- update (forward + backward of the GRPO loss on P*N rows)
    comp = rng.integers(20, cfg.text.vocab_size, size=(p * n, g)).astype(np.int32)
    mask = np.ones((p * n, g), np.float32)
    adv = rng.standard_normal(p * n).astype(np.float32)
    ref = np.asarray(rng.normal(-9.0, 0.5, size=(p * n, g)), np.float32)
    pin = repeat_prompt(prepare_inputs(cfg, **prompt), n)
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def make_step(grouped):
        @jax.jit
        def step(params, rest, pin, comp, mask, adv, ref):
            def loss_fn(params):
                m = nnx.merge(graphdef, params, rest)
                if grouped:
                    lp = group_completion_logprobs(m, pin, comp, mask.astype(jnp.int32), group_size=n, remat=args.remat)
                else:
                    lp = completion_logprobs(m, pin, comp, mask.astype(jnp.int32), remat=args.remat)
                return grpo_loss(lp, None, ref, adv, mask)[0]

            return jax.value_and_grad(loss_fn)(params)

        return lambda: jax.block_until_ready(step(params, rest, pin, comp, mask, adv, ref))

    full = torch.from_numpy(np.concatenate([np.repeat(ids, n, 0), comp], 1).astype(np.int64))
    tmask, tadv, tref = torch.from_numpy(mask), torch.from_numpy(adv), torch.from_numpy(ref)
    hf.train()

    def torch_step():
        hf.zero_grad(set_to_none=True)
        logits = hf(input_ids=full, attention_mask=torch.ones_like(full)).logits[:, t - 1 : -1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, full[:, t:, None])[..., 0]
        loss = torch_grpo_loss(torch, lp, tref, tadv, tmask)
        loss.backward()

    torch_step()  # warm-up
    for path in args.update_paths.split(","):
        run = make_step(path == "grouped")
        t0 = time.perf_counter()
        run()
        ucompile = time.perf_counter() - t0
        jax_u, torch_u = timed_pair(run, torch_step, args.repeats)
        print(
            f"update [{path}] jax {jax_u:.2f} s/step (first call incl. compile {ucompile:.1f} s) | "
            f"pytorch {torch_u:.2f} s/step | ratio {torch_u / jax_u:.2f}x   "
            f"[{p * n} rows x {t + g} tokens, fwd+bwd GRPO loss]",
            flush=True,
        )


def bench_mfu(args):
    """Forward + backward of a 7B-shaped text stack with random bf16 weights (run on a GPU)."""
    from flax import nnx

    from omnir1_jax.models.qwen2_5_omni import qwen2_5_omni_7b

    base = qwen2_5_omni_7b()
    cfg = Qwen2_5OmniConfig(
        text=base.text,
        vision=VisionConfig(depth=1, out_hidden_size=base.text.hidden_size, fullatt_block_indexes=(0,)),
        audio=AudioConfig(encoder_layers=1, output_dim=base.text.hidden_size),
    )
    model = init_model(cfg, dtype=jnp.bfloat16)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    text_params = sum(
        int(np.prod(x.shape))
        for path, x in jax.tree_util.tree_leaves_with_path(params)
        if "language_model" in jax.tree_util.keystr(path) or "lm_head" in jax.tree_util.keystr(path)
    )
    b, t, c = args.mfu_batch, args.mfu_prompt, args.mfu_completion
    rng = np.random.default_rng(0)
    ids = rng.integers(20, cfg.text.vocab_size, size=(b, t))
    pin = prepare_inputs(cfg, input_ids=ids, attention_mask=np.ones_like(ids))
    comp = jnp.asarray(rng.integers(20, cfg.text.vocab_size, size=(b, c)), jnp.int32)
    mask = jnp.ones((b, c), jnp.float32)

    @jax.jit
    def step(params, rest):
        def loss_fn(params):
            lp = completion_logprobs(nnx.merge(graphdef, params, rest), pin, comp, mask.astype(jnp.int32), remat=True)
            return grpo_loss(lp, None, None, jnp.ones((b,)), mask, beta=0.0)[0]

        return jax.value_and_grad(loss_fn)(params)

    jax.block_until_ready(step(params, rest))
    s = timed(lambda: jax.block_until_ready(step(params, rest)), args.repeats)
    tokens = b * (t + c)
    flops = 6 * text_params * tokens
    print(
        f"mfu  {jax.devices()[0].device_kind}: {b} x {t + c} tokens, {text_params / 1e9:.2f} B text params, "
        f"{s:.3f} s/step, {flops / s / 1e12:.1f} TFLOP/s, MFU {flops / s / (args.peak_tflops * 1e12):.1%}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--update-paths",
        default="grouped",
        help="comma-separated update variants to time: grouped (shared prompt), full (full rows)",
    )
    ap.add_argument("--remat", action="store_true", help="rematerialise decoder layers in the update")
    ap.add_argument("--mfu", action="store_true", help="GPU: 7B-shaped forward+backward MFU instead")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--mfu-batch", type=int, default=8)
    ap.add_argument("--mfu-prompt", type=int, default=512)
    ap.add_argument("--mfu-completion", type=int, default=512)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, jax {jax.__version__}, devices {jax.devices()}")
    if args.mfu:
        bench_mfu(args)
    else:
        bench_cpu(args)


if __name__ == "__main__":
    main()
