"""The task interface of the learner, a checkpointable batch iterator, and the task registry."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ConfigError, ExperimentConfig


@dataclasses.dataclass
class Scored:
    """Rewards of one step's completions (rows ordered ``prompt * group_size + sample``).

    Attributes:
      rewards: float32 ``[R]`` total reward of each row.
      components: reward terms ``{name: [R]}`` (logged as ``reward/<name>``, mean / min / max).
      stats: scalar counters of the step, logged under their names (``bridge/n_detections``, ``judge/...``).
    """

    rewards: np.ndarray
    components: dict[str, np.ndarray]
    stats: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Rollout:
    """One GRPO step's sampled groups: what the update reads and what is logged about them (rows ordered
    ``prompt * group_size + sample``).

    Attributes:
      prompt: the prepared prompts (``ModelInputs``, each repeated per group row; for multi-turn rollouts the
        whole trajectories), this process's part of the global batch.
      completion_ids, completion_mask: int ``[R, C]`` the scored tokens and which of them count (global arrays;
        for trajectories: every token, the mask on the answers only).
      advantages: float32 ``[R]`` group-normalised advantages.
      rewards, components, stats: the task's :class:`Scored` of every row of the global batch.
      texts: every row's decoded (final) answer; lengths: int ``[R]`` answer tokens per row.
      t_sample, t_reward: seconds spent sampling and scoring.
      trajectories: the multi-turn conversations (:class:`InteractiveTask`), else None.
      old_logps: float32 ``[R, C]`` the sampler's log-probs of ``completion_ids`` (global array), when the update
        must take them as pi_old (``grpo.overlap``: the rows were sampled by an older policy), else None.
    """

    prompt: Any
    completion_ids: Any
    completion_mask: Any
    advantages: Any
    rewards: np.ndarray
    components: dict[str, np.ndarray]
    stats: dict[str, float]
    texts: list[str]
    lengths: np.ndarray
    t_sample: float = 0.0
    t_reward: float = 0.0
    trajectories: list | None = None
    old_logps: Any = None


@dataclasses.dataclass
class Targets:
    """One SFT step's supervised targets: the prompts, the target tokens and which of them are scored, and their
    texts (``prompt`` / ids / mask: this process's part of the global batch); ``weights``: float32 per-token loss
    weights (``sft.think_weight``), None for the plain token mean."""

    prompt: Any
    completion_ids: Any
    completion_mask: Any
    texts: list[str]
    weights: Any = None


class Task:
    """One training task. Subclasses set :attr:`name` and implement the three methods.

    A *batch* is whatever :meth:`batches` yields: a dict holding at least ``model_inputs`` (the Thinker's
    keyword inputs, as the data pipelines emit them) and whatever the task's own methods need to score it.
    """

    name = "task"
    #: reward weights shown in the reward plot (a component whose weight is 0 does not count)
    weights: dict[str, float] = {}
    #: answers per rollout: 1, or more for an :class:`InteractiveTask` (System 2's feedback between them)
    max_turns: int = 1

    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ) -> Iterator[dict[str, Any]]:
        """An endless, checkpointable (``get_state`` / ``set_state``) iterator of training batches of
        ``batch_size`` prompts; with ``share = (i, n)`` only block ``i`` of ``n`` of each batch (the prompts of
        process ``i`` of ``n``: ``batch_size // n`` of them), from the same seeded order on every process, so the
        iterator state is the same on every process and the blocks of all processes make the whole batch."""
        raise NotImplementedError

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        """Rewards of ``texts`` (``group_size`` completions per prompt of ``batch``)."""
        raise NotImplementedError

    def submit(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Any:
        """The first half of :meth:`score`: send what needs System 2 (the bridge requests leave now) and return a
        handle for :meth:`collect`, so that several batches' requests (e.g. every seed's, see
        :mod:`omnir1_jax.seeds`) are in flight together. By default it scores at once."""
        return self.score(batch, texts, group_size)

    def collect(self, pending: Any) -> Scored:
        """The second half of :meth:`score`: wait for the replies of :meth:`submit` and compute the rewards."""
        return pending

    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        """Supervised target text of each prompt of ``batch`` (SFT)."""
        raise NotImplementedError(f"task {self.name!r} has no supervised targets")

    def model_inputs(self, model_config, batch: dict[str, Any]):
        """The prepared prompt (``ModelInputs``) of ``batch`` for a policy of ``model_config``: by default the
        pipelines' transformers keywords under ``batch["model_inputs"]``, prepared."""
        # lazy: the model package pulls in flax
        from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs

        return as_model_inputs(model_config, batch["model_inputs"])

    def close(self) -> None:
        """Release what the task holds (judge connections); the learner calls it once."""


class InteractiveTask(Task):
    """A task whose rollouts have :attr:`max_turns` answers, System 2's feedback appended between them (see
    :mod:`omnir1_jax.tasks.interactive`). A rollout is a *trajectory*; the learner samples each turn from the
    re-prefilled conversation and scores whole trajectories with only the answers in the mask."""

    def start(self, batch: dict[str, Any], group_size: int) -> list:
        """One trajectory per rollout (rows ``prompt * group_size + sample``) holding its prompt."""
        raise NotImplementedError

    def add_answers(
        self, trajectories: Sequence[Any], tokens: np.ndarray, lengths: np.ndarray, texts: Sequence[str]
    ) -> None:
        """Append each trajectory's sampled answer (its tokens up to and including EOS)."""
        raise NotImplementedError

    def add_feedback(self, batch: dict[str, Any], trajectories: Sequence[Any], group_size: int) -> dict:
        """Ask System 2 about every trajectory's last answer and append the feedback turn; returns counters."""
        raise NotImplementedError

    def trajectory_inputs(self, model_config, trajectories: Sequence[Any], pad_id: int):
        """The trajectories as one left-padded batch: ``(ModelInputs, answer_mask [R, T])``."""
        raise NotImplementedError

    def score_trajectories(self, batch: dict[str, Any], trajectories: Sequence[Any], group_size: int) -> Scored:
        """The rewards of the trajectories (their final answers)."""
        raise NotImplementedError


class RecordBatches:
    """Endless seeded batches over a record list, reshuffled per epoch; checkpointable.

    ``make_batch(records) -> dict`` builds one batch (with ``share = (i, n)``: from block ``i`` of ``n`` of the
    batch's records only). The state (epoch, position) is JSON bytes, like a Grain
    iterator's, so the learner stores it in its checkpoint metadata and a resumed run sees the same batches.
    """

    def __init__(
        self,
        records: Sequence[Any],
        make_batch: Callable[[list], dict[str, Any]],
        *,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        share: tuple[int, int] = (0, 1),
    ):
        if not records:
            raise ConfigError("no training records to build batches from")
        i, n = share
        if not 0 <= i < n or batch_size % n:
            raise ConfigError(f"share={tuple(share)}: need 0 <= i < n and batch_size={batch_size} a multiple of n")
        if n > 1 and len(records) < batch_size:
            raise ConfigError(
                f"{len(records)} training records give no full batch of {batch_size} to split over {n} processes"
            )
        self.share = (int(i), int(n))
        self.records, self.make_batch = list(records), make_batch
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), shuffle
        self.epoch, self.pos = 0, 0

    def _order(self) -> np.ndarray:
        n = len(self.records)
        return np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        order = self._order()
        i, n = self.share
        # split over processes, a last partial batch is dropped (it would not split into equal blocks)
        if self.pos >= len(order) or (n > 1 and self.pos + self.batch_size > len(order)):
            self.epoch, self.pos = self.epoch + 1, 0
            order = self._order()
        chunk = [self.records[i] for i in order[self.pos : self.pos + self.batch_size]]
        self.pos += self.batch_size
        k = self.batch_size // n
        chunk = chunk[i * k : (i + 1) * k] if n > 1 else chunk
        batch = self.make_batch(chunk)
        batch["records"] = chunk
        return batch

    def get_state(self) -> bytes:
        return json.dumps({"epoch": self.epoch, "pos": self.pos}).encode()

    def set_state(self, state: bytes) -> None:
        d = json.loads(bytes(state).decode())
        self.epoch, self.pos = int(d["epoch"]), int(d["pos"])


def make_task(cfg: ExperimentConfig, tokenizer, *, bridge: Callable[[], Any] | None = None, judge=None) -> Task:
    """The task of ``cfg.data.task``: ``vos`` | ``refaid`` (System 2 through ``bridge()``, a callable returning a
    ``BridgeClient``, called on first use), ``grounding`` (SegZero-style System-2 training, no bridge), ``qa``
    (CrossOmni; ``judge`` scores consistency / coherence) or ``mixture`` (the tasks of ``cfg.data.tasks`` in every
    batch, :class:`~omnir1_jax.tasks.mixture.MixtureTask`)."""
    # the task modules are imported here, not at the top: each of them imports this module
    from omnir1_jax.tasks import crossomni_qa, grounding, interactive, mixture, vos

    kind = cfg.data.task
    if kind in ("vos", "refaid"):
        return (vos.VOSTask if kind == "vos" else vos.RefAIDTask)(cfg, tokenizer, bridge)
    if kind == "vos_interactive":
        return interactive.VOSInteractiveTask(cfg, tokenizer, bridge)
    if kind == "grounding":
        return grounding.GroundingTask(cfg, tokenizer)
    if kind == "qa":
        return crossomni_qa.CrossOmniQATask(cfg, tokenizer, judge)
    if kind == "mixture":
        return mixture.MixtureTask(cfg, tokenizer, bridge=bridge, judge=judge)
    raise ConfigError(f"data.task={kind!r} has no task plug-in (vos, refaid, grounding, qa, mixture)")
