"""TRL's ``GRPOTrainer`` on the peer task (PyTorch on the CPU, transformers' ``generate``, no vLLM).

Run by ``benchmarks/peer_grpo.py`` under ``.venv-peers/bin/python`` (one process per seed); writes the per-step
JSON the orchestrator aggregates (``peer_common``). Settings from ``peer_task.SETTINGS``; what TRL does
differently is listed in BENCHMARKS.md "Peers".

    .venv-peers/bin/python benchmarks/peer_trl.py --model runs/peers/model --seed 0 --out runs/peers/trl_0.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_common  # noqa: E402
import peer_task  # noqa: E402


def run(model_dir: str, seed: int, steps: int, threads: int) -> dict:
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(threads)
    s = peer_task.SETTINGS
    n, b = s["group_size"], s["prompts_per_step"]
    prompts = [p for batch in peer_task.schedule(seed, steps, b) for p in batch]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    cur: dict = {}
    rows: list[dict] = []

    def colour_reward(prompts, completions, **kwargs):
        t0 = time.perf_counter()
        colours = [peer_task.colour_of(p) for p in prompts]
        out = [peer_task.reward(c, t) for c, t in zip(colours, completions)]
        cur.update(peer_task.summarise_rows(colours, completions))
        cur["t_reward"] = cur.get("t_reward", 0.0) + time.perf_counter() - t0
        return out

    with tempfile.TemporaryDirectory() as out_dir:
        args = GRPOConfig(
            output_dir=out_dir,
            per_device_train_batch_size=n * b,
            gradient_accumulation_steps=1,
            num_generations=n,
            max_completion_length=s["max_new_tokens"],
            temperature=s["temperature"],
            top_p=1.0,
            top_k=0,
            learning_rate=s["lr"],
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=s["warmup_steps"],
            max_grad_norm=s["grad_clip"],
            weight_decay=0.0,
            adam_beta1=0.9,
            adam_beta2=0.999,
            adam_epsilon=1e-8,
            beta=s["beta"],
            epsilon=s["epsilon"],
            loss_type="grpo",
            scale_rewards="group",
            num_iterations=1,
            max_steps=steps,
            seed=seed,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            shuffle_dataset=False,
            use_cpu=True,
            bf16=False,
            fp16=False,
            disable_dropout=True,
            dataloader_num_workers=0,
            log_completions=False,
            model_init_kwargs={"dtype": torch.float32},
            # TRL >= 1.x multiplies the KL term by the importance ratio by default (its gradient gains beta * k3 *
            # grad log p); ours and tunix use the plain k3 term, so it is switched off here (BENCHMARKS.md "Peers")
            use_bias_correction_kl=False,
        )
        trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=[colour_reward],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            processing_class=tokenizer,
        )
        generate = trainer._generate_single_turn

        def timed_generate(*a, **k):
            t0 = time.perf_counter()
            ids, logprobs = generate(*a, **k)
            cur["t_sample"] = cur.get("t_sample", 0.0) + time.perf_counter() - t0
            cur["tokens"] = cur.get("tokens", 0) + sum(len(x) for x in ids)
            return ids, logprobs

        trainer._generate_single_turn = timed_generate

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                cur.clear()
                cur["t0"] = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                t_step = time.perf_counter() - cur.pop("t0")
                rows.append(
                    {
                        "step": len(rows) + 1,
                        "reward": cur["reward"],
                        "accuracy": cur["accuracy"],
                        "format": cur["format"],
                        "t_step": t_step,
                        "t_sample": cur.get("t_sample", 0.0),
                        "t_reward": cur.get("t_reward", 0.0),
                        "tokens": cur.get("tokens", 0),
                        "kl": float("nan"),
                    }
                )
                peer_common.progress("trl", seed, rows[-1])

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "kl" in logs and rows:
                    rows[-1]["kl"] = float(logs["kl"])

        trainer.add_callback(Timer())
        trainer.train()
    return {
        "stack": "trl",
        "seed": seed,
        "steps": rows,
        "peak_rss_mb": peer_common.peak_rss_mb(),
        "versions": {
            "trl": trl.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": threads,
        },
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=peer_task.SETTINGS["steps"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    peer_common.write_json(args.out, run(args.model, args.seed, args.steps, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
