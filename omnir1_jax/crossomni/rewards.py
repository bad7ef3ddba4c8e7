"""CrossOmni GRPO rewards for whole groups, and the judge backends the trainer talks to.

Total reward of a completion (paper 004, section 4.2.2; equal weights by default, each term in [0, 1])::

    R = w_fmt * R_format + w_acc * R_accuracy + w_cons * R_consistency + w_coh * R_coherence

``R_consistency`` compares the completion's ``<think>`` with the record's reference rationale (judge score 0-5,
/5); ``R_coherence`` rates it alone (0-3, /3) — :func:`omnir1_jax.rewards.judge_reward` with the Table-18
prompts. A judge is any batched callable ``list[str] -> list[str]`` (:func:`make_judge`):

- ``python:package.module:function`` — your own callable (``str -> str``, or ``list -> list`` when the
  function has ``batched = True``), e.g. an API client;
- ``bridge:ADDRESS`` — ``judge`` requests to a running bridge started with ``--judge hf:PATH``;
- ``hf:PATH`` — a local judge-only bridge subprocess (``--segmenter none --judge hf:PATH``) serving the text
  model at PATH through transformers, batched; stopped by the judge's ``close()``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Callable, Sequence

import numpy as np

from omnir1_jax.rewards import choice_accuracy_reward, judge_reward, think_format_reward


@dataclasses.dataclass(frozen=True)
class QARewardWeights:
    """Weights of the four CrossOmni reward terms (0 disables a term; the judge is then not called for it)."""

    format: float = 1.0
    accuracy: float = 1.0
    consistency: float = 1.0
    coherence: float = 1.0

    @property
    def needs_judge(self) -> bool:
        return self.consistency > 0 or self.coherence > 0


def qa_rewards(completions: Sequence[str], records: Sequence, judge: Callable | None,
               weights: QARewardWeights = QARewardWeights()) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Rewards of completions ``[N]`` with their records ``[N]`` (a group repeats its record).

    Returns ``(total [N] float32, components {format, accuracy, consistency, coherence} [N], judge metrics)``.
    """
    if len(records) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(records)} records")
    n = len(completions)
    comps = {"format": think_format_reward(completions),
             "accuracy": choice_accuracy_reward(completions, [r.answer for r in records]),
             "consistency": np.zeros(n, np.float32), "coherence": np.zeros(n, np.float32)}
    metrics: dict[str, float] = {}
    if weights.needs_judge:
        if judge is None:
            raise ValueError("consistency / coherence weights > 0 need a judge (--judge ...)")
        if weights.consistency > 0:
            comps["consistency"], m = judge_reward(judge, "consistency", completions,
                                                   [r.rationale or "" for r in records], batched=True)
            metrics.update({f"consistency/{k}": v for k, v in m.items()})
        if weights.coherence > 0:
            comps["coherence"], m = judge_reward(judge, "coherence", completions, batched=True)
            metrics.update({f"coherence/{k}": v for k, v in m.items()})
    total = sum(getattr(weights, k) * comps[k] for k in comps).astype(np.float32)
    return total, comps, metrics


# ------------------------------------------------------------------------------------------------- judges
class BridgeJudge:
    """Batched judge over a bridge's ``judge`` request (one request per call, all prompts in it)."""

    batched = True

    def __init__(self, client, *, max_new_tokens: int = 8, server=None):
        self.client, self.max_new_tokens, self.server = client, max_new_tokens, server

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        if not prompts:
            return []
        body = {"prompts": list(prompts), "max_new_tokens": int(self.max_new_tokens)}
        texts = self.client.submit("judge", body).result()["texts"]
        if len(texts) != len(prompts):
            raise ValueError(f"judge returned {len(texts)} replies for {len(prompts)} prompts")
        return [str(t) for t in texts]

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()


class _PerPrompt:
    batched = True

    def __init__(self, fn: Callable[[str], str]):
        self.fn = fn

    def __call__(self, prompts):
        return [self.fn(p) for p in prompts]

    def close(self) -> None:
        pass


def make_judge(spec: str | Callable | None, *, run_dir: str = "runs/judge", max_new_tokens: int = 8,
               timeout_s: float = 600.0):
    """A batched judge (``list[str] -> list[str]`` with ``.close()``) from a spec (module docstring), a Python
    callable, or None (no judge)."""
    if spec is None:
        return None
    if callable(spec):
        return spec if getattr(spec, "batched", False) else _PerPrompt(spec)
    kind, _, rest = str(spec).partition(":")
    if kind == "python":
        mod, _, attr = rest.rpartition(":")
        if not mod or not attr:
            raise ValueError(f"--judge python:MODULE:FUNCTION, got {spec!r}")
        fn = getattr(importlib.import_module(mod), attr)
        return make_judge(fn)
    from sam2_bridge.client import BridgeClient, LocalServer

    if kind == "bridge":
        return BridgeJudge(BridgeClient([rest], deadline_s=timeout_s), max_new_tokens=max_new_tokens)
    if kind in ("hf", "transformers"):
        if not os.path.isdir(rest):
            raise ValueError(f"--judge {spec!r}: no such model directory")
        os.makedirs(run_dir, exist_ok=True)
        address = f"ipc://{os.path.join(os.path.abspath(run_dir), 'judge.sock')}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
        server = LocalServer(["--address", address, "--workers", "1", "--segmenter", "none",
                              "--judge", f"hf:{os.path.abspath(rest)}"], env=env,
                             log_path=os.path.join(run_dir, "judge_bridge.log")).start()
        client = BridgeClient([address], deadline_s=timeout_s, local_server=server)
        try:
            client.wait_ready(timeout_s=timeout_s)
        except Exception:
            client.close()
            server.stop()
            raise
        return BridgeJudge(client, max_new_tokens=max_new_tokens, server=server)
    raise ValueError(f"unknown judge {spec!r}: use python:MODULE:FUNCTION, bridge:ADDRESS or hf:PATH")
