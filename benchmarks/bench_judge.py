"""The bridge judge (``--judge hf:PATH``): batched left-padded greedy decoding against ``generate`` per prompt,
and the bridge round trip against the same judge in process.

    python benchmarks/bench_judge.py [--prompts 32] [--new-tokens 8] [--hidden 256] [--layers 4] [--batch 16]

A random Qwen2 causal LM (the tiny offline tokenizer, vocab 512) is written to a temporary folder; the prompts are
CrossOmni coherence-judge prompts (Table 18) of varying length. Rows (best of ``--repeats`` after a warm-up):

- reference: transformers ``generate(do_sample=False)`` on each prompt alone (what a per-prompt judge does);
- ours, in process: :class:`sam2_bridge.server.judge.HFJudge` (batches of ``--batch``, left-padded), same texts;
- ours, through a bridge subprocess: :class:`omnir1_jax.tasks.crossomni_judge.BridgeJudge` over ``--judge hf:DIR``.

Prints seconds, prompts/s and the ratios; checks that all three give the same texts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_model(path: str, hidden: int, layers: int) -> None:
    import torch
    import transformers

    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer, special_token_ids

    tok, ids = build_tiny_tokenizer(), special_token_ids()
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 128),
        max_position_embeddings=4096,
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def prompts_of(n: int) -> list[str]:
    # lazy: the rewards pull in jax
    from omnir1_jax.rewards.crossomni import JUDGE_KINDS

    template, _ = JUDGE_KINDS["coherence"]
    steps = [
        "the man in red is Sheldon",
        "his biography says he grew up in Texas",
        "so the answer is B",
        "the blonde woman stands on the left",
        "Penny is described as blonde",
    ]
    return [template.format(hypothesis=". ".join(steps[: 1 + i % len(steps)]) * (1 + i % 3)) for i in range(n)]


def per_prompt(path: str, prompts, new_tokens: int):
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()

    def call():
        out = []
        for p in prompts:
            enc = tok.apply_chat_template(
                [{"role": "user", "content": p}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                gen = model.generate(**enc, do_sample=False, max_new_tokens=new_tokens)
            out.append(tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        return out

    return call


def best(fn, repeats: int):
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-bridge", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from sam2_bridge.server.judge import HFJudge

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "judge")
        build_model(path, args.hidden, args.layers)
        prompts = prompts_of(args.prompts)
        t_ref, ref = best(per_prompt(path, prompts, args.new_tokens), args.repeats)
        judge = HFJudge(path, max_batch=args.batch)
        t_ours, ours = best(lambda: judge.generate(prompts, args.new_tokens)[0], args.repeats)
        rows = [("reference: generate per prompt", t_ref), (f"ours: HFJudge, batches of {args.batch}", t_ours)]
        same = ours == ref
        if not args.no_bridge:
            # lazy: the bridge judge (zmq, the task plug-ins) is needed only here
            from omnir1_jax.tasks.crossomni_judge import make_judge

            served = make_judge(f"hf:{path}", run_dir=os.path.join(tmp, "bridge"), max_new_tokens=args.new_tokens)
            try:
                t_bridge, bridged = best(lambda: served(prompts), args.repeats)
            finally:
                served.close()
            rows.append(("ours: through a bridge subprocess", t_bridge))
            same = same and bridged == ref
    print(
        f"{args.prompts} prompts, {args.new_tokens} new tokens, Qwen2 hidden {args.hidden} x {args.layers} layers, "
        f"torch threads {torch.get_num_threads()}; identical texts: {same}"
    )
    for name, t in rows:
        print(f"  {name:40s} {t:8.3f} s  {args.prompts / t:8.1f} prompts/s")
    print(f"  batched speed-up over per-prompt: {t_ref / t_ours:.2f}x")
    if len(rows) == 3:
        print(f"  bridge round trip vs in process: {rows[2][1] / t_ours:.2f}x the time")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
