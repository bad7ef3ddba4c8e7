"""tunix's ``GRPOLearner`` on the peer task (JAX, its own Qwen2 model loaded from the task's safetensors, the
vanilla rollout engine; actor, reference and rollout on one CPU device).

Run by ``benchmarks/peer_grpo.py`` under ``.venv-peers/bin/python`` (one process per seed); writes the per-step
JSON the orchestrator aggregates (``peer_common``). Settings from ``peer_task.SETTINGS``; what tunix does
differently is listed in BENCHMARKS.md "Peers". One change to tunix's behaviour, made so that its runs are
comparable: its vanilla rollout samples every step with the same PRNG key (``RolloutConfig.seed``, or key 0
when unset); this runner gives each step its own key (``fold_in(key(seed), step)``), as the other stacks do.

    .venv-peers/bin/python benchmarks/peer_tunix.py --model runs/peers/model --seed 0 --out runs/peers/tunix_0.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_common  # noqa: E402
import peer_task  # noqa: E402


def run(model_dir: str, seed: int, steps: int) -> dict:
    import jax
    import numpy as np
    import optax
    import tunix
    from flax import nnx
    from transformers import AutoTokenizer
    from tunix.models.qwen2 import model as qwen2_model
    from tunix.models.qwen2 import params as qwen2_params
    from tunix.rl import rl_cluster as rc
    from tunix.rl.grpo.grpo_learner import GRPOConfig, GRPOLearner
    from tunix.rl.rollout import base_rollout
    from tunix.sft import metrics_logger

    s = peer_task.SETTINGS
    n, b = s["group_size"], s["prompts_per_step"]
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    heads = hf["num_attention_heads"]
    model_cfg = qwen2_model.ModelConfig(
        num_layers=hf["num_hidden_layers"],
        vocab_size=hf["vocab_size"],
        embed_dim=hf["hidden_size"],
        hidden_dim=hf["intermediate_size"],
        num_heads=heads,
        head_dim=hf["hidden_size"] // heads,
        num_kv_heads=hf["num_key_value_heads"],
        rope_theta=int(hf["rope_parameters"]["rope_theta"]),
        norm_eps=hf["rms_norm_eps"],
        use_tied_embedding=hf["tie_word_embeddings"],
    )
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tp"))  # Auto axes
    actor = qwen2_params.create_model_from_safe_tensors(model_dir, model_cfg, mesh)
    reference = qwen2_params.create_model_from_safe_tensors(model_dir, model_cfg, mesh)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    prompt_len = len(tokenizer(peer_task.prompt_of(peer_task.COLOURS[0]))["input_ids"])

    schedule = optax.linear_schedule(0.0, s["lr"], s["warmup_steps"])
    optimizer = optax.chain(
        optax.clip_by_global_norm(s["grad_clip"]), optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)
    )
    cur: dict = {}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as log_dir:
        training = rc.RLTrainingConfig(
            actor_optimizer=optimizer,
            eval_every_n_steps=10**9,
            max_steps=steps,
            mini_batch_size=b,
            train_micro_batch_size=b,
            metrics_logging_options=metrics_logger.MetricsLoggerOptions(log_dir=log_dir, flush_every_n_steps=10**9),
            checkpoint_root_directory=None,
        )
        rollout = base_rollout.RolloutConfig(
            max_tokens_to_generate=s["max_new_tokens"],
            max_prompt_length=prompt_len,
            kv_cache_size=prompt_len + s["max_new_tokens"] + 8,
            temperature=s["temperature"],
            top_p=1.0,
            top_k=None,
            seed=jax.random.PRNGKey(seed),
        )
        cluster = rc.RLCluster(
            actor=actor,
            reference=reference,
            tokenizer=tokenizer,
            cluster_config=rc.ClusterConfig(
                role_to_mesh={rc.Role.ACTOR: mesh, rc.Role.REFERENCE: mesh, rc.Role.ROLLOUT: mesh},
                rollout_engine="vanilla",
                offload_to_cpu=False,
                training_config=training,
                rollout_config=rollout,
            ),
        )

        def colour_reward(prompts, completions, **kwargs):
            t0 = time.perf_counter()
            colours = [peer_task.colour_of(p) for p in prompts]
            out = [peer_task.reward(c, t) for c, t in zip(colours, completions)]
            cur.update(peer_task.summarise_rows(colours, completions))
            cur["t_reward"] = cur.get("t_reward", 0.0) + time.perf_counter() - t0
            return out

        algo = GRPOConfig(
            num_generations=n,
            num_iterations=1,
            beta=s["beta"],
            epsilon=s["epsilon"],
            kl_loss_mode="low_var_kl",
            loss_agg_mode="sequence-mean-token-mean",
        )
        learner = GRPOLearner(rl_cluster=cluster, algo_config=algo, reward_fns=[colour_reward])

        engine = cluster.rollout
        generate = engine.generate

        def timed_generate(prompts, rollout_config, **kw):  # a fresh sampling key per step (module docstring)
            rollout_config = dataclasses.replace(
                rollout_config, seed=jax.random.fold_in(jax.random.PRNGKey(seed), len(rows))
            )
            t0 = time.perf_counter()
            out = generate(prompts, rollout_config, **kw)
            cur["t_sample"] = cur.get("t_sample", 0.0) + time.perf_counter() - t0
            cur["tokens"] = cur.get("tokens", 0) + int(sum(len(t) for t in out.tokens))
            return out

        engine.generate = timed_generate
        step_fn = learner._run_global_step

        def timed_step(*a, **k):
            cur.clear()
            t0 = time.perf_counter()
            step_fn(*a, **k)
            jax.block_until_ready(nnx.state(cluster.actor_trainer.model))  # the update is done when timed
            rows.append(
                {
                    "step": len(rows) + 1,
                    "reward": cur["reward"],
                    "accuracy": cur["accuracy"],
                    "format": cur["format"],
                    "t_step": time.perf_counter() - t0,
                    "t_sample": cur.get("t_sample", 0.0),
                    "t_reward": cur.get("t_reward", 0.0),
                    "tokens": cur.get("tokens", 0),
                    "kl": float("nan"),
                }
            )
            peer_common.progress("tunix", seed, rows[-1])

        learner._run_global_step = timed_step
        batches = peer_task.schedule(seed, steps, b)
        learner.train([{"prompts": np.asarray(p)} for p in batches])
    return {
        "stack": "tunix",
        "seed": seed,
        "steps": rows,
        "peak_rss_mb": peer_common.peak_rss_mb(),
        "versions": {"tunix": getattr(tunix, "__version__", "0.1.7"), "jax": jax.__version__},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=peer_task.SETTINGS["steps"])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    peer_common.write_json(args.out, run(args.model, args.seed, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
