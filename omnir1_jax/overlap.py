"""Asynchronous rewards (``grpo.overlap = "one_step"``): the bridge scores one batch while the learner samples the
next and updates on the one before (docs/design.md §4.8).

Step k of the learner (theta_k: the policy after k updates; B_k: the k-th batch of the data iterator, sampled
with the k-th split of the sampling key, as in the synchronous loop)::

    learner                                          scoring lane (a thread: task.score, the bridge)
    sample B_{k+1} with theta_k                      scores B_k (handed over in step k - 1)
    hand B_{k+1} to the lane
    wait for B_k's rewards
    update theta_k -> theta_{k+1} on B_k             scores B_{k+1}

B_0 is sampled at the start of step 0 (lag 0); every later batch is updated on by the policy one version newer
than the one that sampled it (lag 1, logged as ``overlap/policy_lag``). The clipped ratio's pi_old is the
sampler's float32 log-probs of exactly what was sampled (``Rollout.old_logps``), also for ``grpo.mu > 1``; the
reference's log-probs and the KL term are computed at update time as in the synchronous step. The lane runs
``task.score`` (for the bridge tasks: parsing, System 2 + SAM2 requests, rewards) on this process's prompts
only; every cross-process gather runs on the learner's thread, so all processes issue collectives in one order.

Timing metrics: ``time/reward`` (the lane's seconds on the batch), ``time/reward_wait`` (the learner blocked on
its rewards) and ``time/reward_idle`` (the lane idle before it, nothing to score).

Checkpoints are taken after an update; the batch then in flight (sampled by the pre-update policy, maybe not yet
scored) goes into the checkpoint's metadata: its tokens, lengths and sampler log-probs, the policy version that
sampled it, the data iterator's state before it was drawn and the sampling key before its split. A resume draws
the same batch again from that state, decodes the same texts and hands them to the lane: the run continues as the
uninterrupted one does (rewards are a function of the texts). Restored with ``overlap = "off"``, the iterator and
key are rewound instead and the batch is sampled again by the restored policy; a checkpoint of a synchronous run
restored with overlap on starts with a lag-0 batch, like step 0.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from omnir1_jax import policy as policy_lib
from omnir1_jax.runtime import distributed
from omnir1_jax.runtime.checkpoint import key_from_data, key_to_data

META_KEY = "inflight"  # the checkpoint metadata item of the batch in flight (bytes: an .npz)


# ---------------------------------------------------------------------------------------------- the lane
@dataclasses.dataclass
class Job:
    """One scoring call on the lane: its future and when it ran (``time.perf_counter`` seconds)."""

    future: concurrent.futures.Future
    started: float | None = None
    ended: float | None = None
    idle_before: float = 0.0  # the lane's idle seconds between the previous job's end and this one's start

    @property
    def seconds(self) -> float:
        return 0.0 if self.started is None or self.ended is None else self.ended - self.started

    def wait(self) -> tuple[Any, float]:
        """The call's result (its exception re-raised here) and the seconds this thread waited for it."""
        t0 = time.perf_counter()
        out = self.future.result()
        return out, time.perf_counter() - t0


class ScoringLane:
    """One worker thread running scoring calls in the order they are handed over (a second call queues behind the
    first, as one bridge client's requests would)."""

    def __init__(self):
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._last_end: float | None = None

    def submit(self, fn: Callable[..., Any], *args) -> Job:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnir1-rewards")
        job = Job(future=None)  # type: ignore[arg-type]

        def run():
            job.started = time.perf_counter()
            job.idle_before = 0.0 if self._last_end is None else max(job.started - self._last_end, 0.0)
            try:
                return fn(*args)
            finally:
                job.ended = self._last_end = time.perf_counter()

        job.future = self._pool.submit(run)
        return job

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# ------------------------------------------------------------------------------------ the batch in flight
@dataclasses.dataclass
class InFlight:
    """A sampled batch whose rewards are not in yet (rows ``prompt * group_size + sample`` of the global batch).

    Attributes:
      batch: this process's share of the batch (what the task scores); prompt: its prepared prompt (None until
        needed).
      tokens, lengths, logprobs: every row's sampled tokens, answer lengths and sampler log-probs (float32).
      texts: every row's decoded answer.
      version: the learner step at sampling (theta_version sampled it).
      data_state: the data iterator's state before the batch was drawn; key: the sampling key before its split.
      t_sample: seconds spent sampling it; job: its scoring call on the lane (None until handed over).
    """

    batch: dict
    prompt: Any
    tokens: np.ndarray
    lengths: np.ndarray
    logprobs: np.ndarray
    texts: list[str]
    version: int
    data_state: bytes
    key: np.ndarray
    t_sample: float = 0.0
    job: Job | None = None

    def to_meta(self) -> bytes:
        """The checkpoint's record of this batch (what :func:`from_meta` needs to draw and score it again)."""
        buf = io.BytesIO()
        state = self.data_state  # bytes (RecordBatches), a JSON string (Grain) or a JSON-able object
        kind = "bytes" if isinstance(state, (bytes, bytearray)) else "str" if isinstance(state, str) else "json"
        raw = bytes(state) if kind == "bytes" else (state if kind == "str" else json.dumps(state)).encode()
        np.savez(
            buf,
            tokens=self.tokens,
            lengths=self.lengths,
            logprobs=self.logprobs,
            key=self.key,
            version=np.int64(self.version),
            data_state=np.frombuffer(raw, np.uint8),
            data_state_kind=np.asarray(kind),
        )
        return buf.getvalue()


def read_meta(blob: bytes) -> dict[str, Any]:
    """The arrays :meth:`InFlight.to_meta` stored."""
    with np.load(io.BytesIO(bytes(blob))) as z:
        raw, kind = z["data_state"].tobytes(), str(z["data_state_kind"])
        state = raw if kind == "bytes" else raw.decode() if kind == "str" else json.loads(raw.decode())
        return {
            "tokens": z["tokens"],
            "lengths": z["lengths"],
            "logprobs": z["logprobs"],
            "key": z["key"],
            "version": int(z["version"]),
            "data_state": state,
        }


def from_meta(learner, blob: bytes) -> InFlight:
    """The checkpoint's batch in flight, drawn again from the learner's data iterator (left where it was at the
    save) and decoded again; not yet handed to a lane."""
    d = read_meta(blob)
    learner.data_iter.set_state(d["data_state"])
    batch = next(learner.data_iter)
    texts = policy_lib.decode_completions(learner.tokenizer, d["tokens"], d["lengths"], learner.eos_ids)
    return InFlight(
        batch=batch,
        prompt=None,
        tokens=d["tokens"],
        lengths=d["lengths"],
        logprobs=d["logprobs"],
        texts=texts,
        version=d["version"],
        data_state=d["data_state"],
        key=d["key"],
    )


def rewind(learner, blob: bytes) -> None:
    """A synchronous learner restored from an overlapped run's checkpoint: the batch that was in flight is drawn
    and sampled again (data iterator and key set back to before it)."""
    d = read_meta(blob)
    learner.data_iter.set_state(d["data_state"])
    learner.key = key_from_data(d["key"])


def lag_metrics(step: int, fl: InFlight, waited: float) -> dict[str, float]:
    job = fl.job
    return {
        "overlap/policy_lag": float(step - fl.version),
        "time/reward_wait": waited,
        "time/reward_idle": job.idle_before if job is not None else 0.0,
    }


# ----------------------------------------------------------------------------------- one learner's schedule
class OneStepOverlap:
    """The one-step-overlap schedule of one :class:`~omnir1_jax.learner.Learner` (single-turn GRPO): its lane, the
    batch in flight, and the step that replaces the synchronous ``train_step``. A seed-parallel group keeps its
    own lane and uses each seed's object only to hold that seed's batch in flight for its checkpoints."""

    def __init__(self, learner):
        self.learner = learner
        self.lane = ScoringLane()
        self.inflight: InFlight | None = None

    # -------------------------------------------------------------------------------------- pieces
    def draw(self) -> tuple[dict, bytes, np.ndarray, jax.Array, float]:
        """The next batch (this process's share) and its sampling key, as the synchronous step takes them:
        ``(batch, data state before it, key before the split, the split-off key, seconds)``."""
        lr = self.learner
        t0 = time.perf_counter()
        state, key = lr.data_iter.get_state(), key_to_data(lr.key)
        batch = next(lr.data_iter)
        lr.key, sk = jax.random.split(lr.key)
        return batch, state, key, sk, time.perf_counter() - t0

    def sample(self) -> tuple[InFlight, float]:
        """Draw the next batch and sample its groups with the current policy (what ``Learner.rollout`` samples);
        returns it (not yet handed to the lane) and the seconds spent drawing the batch."""
        lr = self.learner
        g = lr.cfg.grpo
        batch, state, key, sk, t_data = self.draw()
        t0 = time.perf_counter()
        local = lr._prompt_of(batch)
        prompt = distributed.global_inputs(lr.policy.config, local, lr.mesh, pad_id=lr.pad_id)
        comp = policy_lib.complete(
            lr.model,
            lr.tokenizer,
            prompt,
            max_new_tokens=g.max_new_tokens,
            greedy=False,
            num_samples=g.group_size,
            key=sk,
            temperature=g.temperature,
            top_k=g.top_k,
            top_p=g.top_p,
            eos_ids=lr.eos_ids,
        )
        fl = InFlight(
            batch=batch,
            prompt=local,
            tokens=comp.tokens,
            lengths=comp.lengths,
            logprobs=comp.logprobs,
            texts=list(comp.texts),
            version=lr.step,
            data_state=state,
            key=key,
            t_sample=time.perf_counter() - t0,
        )
        return fl, t_data

    def hand_over(self, fl: InFlight) -> None:
        """Give ``fl``'s rows of this process to the lane (``task.score``)."""
        lr, n = self.learner, self.learner.cfg.grpo.group_size
        lo, hi = distributed.my_prompts(len(fl.texts) // n)
        fl.job = self.lane.submit(lr.task.score, fl.batch, fl.texts[lo * n : hi * n], n)

    # ---------------------------------------------------------------------------------------- step
    def step(self) -> dict[str, float]:
        """One learner step: sample the next batch, wait for the current one's rewards, update on it."""
        lr = self.learner
        t0 = time.perf_counter()
        t_data = 0.0
        if self.inflight is None:  # the first step (or a resume from a synchronous checkpoint): B_0, lag 0
            self.inflight, t_data = self.sample()
        cur = self.inflight
        if cur.job is None:
            self.hand_over(cur)
        nxt, t = self.sample()
        t_data += t
        self.hand_over(nxt)
        mine, waited = cur.job.wait()
        scored = lr._gather_scored(mine)
        if cur.prompt is None:
            cur.prompt = lr._prompt_of(cur.batch)
        ro = lr.assemble(
            cur.prompt, cur.tokens, cur.lengths, cur.texts, scored, cur.t_sample, cur.job.seconds, logprobs=cur.logprobs
        )
        lr.last_rollout = ro
        self.inflight = nxt
        t1 = time.perf_counter()
        m = lr.update(ro)
        m = lr.grpo_metrics(m, ro, t_data=t_data, t_update=time.perf_counter() - t1, t_step=time.perf_counter() - t0)
        m.update(lag_metrics(lr.step, cur, waited))
        return lr._finish_step(m, ro.texts)

    # ---------------------------------------------------------------------------- checkpoints, end
    def meta(self) -> dict[str, bytes]:
        return {META_KEY: self.inflight.to_meta()} if self.inflight is not None else {}

    def restore(self, meta: dict[str, Any]) -> None:
        self.drain()
        self.inflight = from_meta(self.learner, meta[META_KEY]) if META_KEY in meta else None

    def drain(self) -> None:
        """Wait until the lane has scored the batch in flight (its result is kept for the next step)."""
        if self.inflight is not None and self.inflight.job is not None:
            self.inflight.job.future.exception()

    def close(self) -> None:
        self.lane.close()
