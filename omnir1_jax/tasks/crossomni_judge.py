"""The CrossOmni task's judge: what scores the contextual consistency and logical coherence of a rationale.

The rewards (:func:`omnir1_jax.crossomni.rewards.qa_rewards`, :func:`omnir1_jax.rewards.judge_reward`) take a
judge as a value: any batched callable ``list[str] -> list[str]`` (prompts in, replies out). This module builds
one from a spec, and it is the only place that talks to a judge bridge (:class:`BridgeJudge`):

- ``python:package.module:function`` — your own callable (``str -> str``, or ``list -> list`` when the
  function has ``batched = True``), e.g. an API client;
- ``bridge:ADDRESS`` — ``judge`` requests to a running bridge started with ``--judge hf:PATH``;
- ``hf:PATH`` — a local judge-only bridge subprocess (``--segmenter none --judge hf:PATH``) serving the text
  model at PATH through transformers, batched; stopped by the judge's ``close()``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence


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


class PerPromptJudge:
    """A ``str -> str`` judge called once per prompt, as a batched judge."""

    batched = True

    def __init__(self, fn: Callable[[str], str]):
        self.fn = fn

    def __call__(self, prompts):
        return [self.fn(p) for p in prompts]

    def close(self) -> None:
        pass


def make_judge(
    spec: str | Callable | None, *, run_dir: str = "runs/judge", max_new_tokens: int = 8, timeout_s: float = 600.0
):
    """A batched judge (``list[str] -> list[str]`` with ``.close()``) from a spec (module docstring), a Python
    callable, or None (no judge)."""
    if spec is None:
        return None
    if callable(spec):
        return spec if getattr(spec, "batched", False) else PerPromptJudge(spec)
    kind, _, rest = str(spec).partition(":")
    if kind == "python":
        mod, _, attr = rest.rpartition(":")
        if not mod or not attr:
            raise ValueError(f"--judge python:MODULE:FUNCTION, got {spec!r}")
        fn = getattr(importlib.import_module(mod), attr)
        return make_judge(fn)
    # lazy: the bridge client (zmq, msgpack) is needed only for a bridge judge
    from sam2_bridge.wire.client import BridgeClient
    from sam2_bridge.wire.pool import LocalServer

    if kind == "bridge":
        return BridgeJudge(BridgeClient([rest], deadline_s=timeout_s), max_new_tokens=max_new_tokens)
    if kind in ("hf", "transformers"):
        if not os.path.isdir(rest):
            raise ValueError(f"--judge {spec!r}: no such model directory")
        os.makedirs(run_dir, exist_ok=True)
        address = f"ipc://{os.path.join(os.path.abspath(run_dir), 'judge.sock')}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
        server = LocalServer(
            ["--address", address, "--workers", "1", "--segmenter", "none", "--judge", f"hf:{os.path.abspath(rest)}"],
            env=env,
            log_path=os.path.join(run_dir, "judge_bridge.log"),
        ).start()
        client = BridgeClient([address], deadline_s=timeout_s, local_server=server)
        try:
            client.wait_ready(timeout_s=timeout_s)
        except Exception:
            client.close()
            server.stop()
            raise
        return BridgeJudge(client, max_new_tokens=max_new_tokens, server=server)
    raise ValueError(f"unknown judge {spec!r}: use python:MODULE:FUNCTION, bridge:ADDRESS or hf:PATH")
