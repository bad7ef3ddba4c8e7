"""Experiment configuration: typed, frozen dataclasses, one file per experiment, ``--set`` overrides.

An experiment file in ``experiments/`` defines ``get_config() -> ExperimentConfig`` and a docstring giving the
command, the hardware and the paper's number. A file of several rows that differ in a few values defines
``get_config(variant)``, lists its variants in ``VARIANTS`` and documents each row (command and paper number) in its
docstring; ``--config experiments/table4.py:rk_rg`` selects one. Entry points load it with :func:`load_config` and
apply command-line overrides ``--set grpo.beta=0.001 --set data.batch_size=4`` with :func:`apply_overrides`
(values are Python literals; each is type-checked against the field it sets).

Every section checks its fields when it is built (``__post_init__``), whether in an experiment file or by an
override: integers must be ints (not bools), numbers finite and in range; a bad value raises :class:`ConfigError`
naming the field and the value.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Sequence
from typing import Any

from omnir1_jax.rewards.segzero import SegZeroSpec
from omnir1_jax.rewards.total import RewardWeights
from sam2_bridge.wire.constants import MAX_CONTEXT_CHARS


class ConfigError(ValueError):
    """A bad experiment file or override; the message names the file / key / value."""


def _int(section: str, obj: Any, name: str, minimum: int) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ConfigError(f"{section}.{name} must be an integer >= {minimum}, got {v!r}")


def _real(
    section: str,
    obj: Any,
    name: str,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    v = getattr(obj, name)
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"{section}.{name} must be a finite number in {interval}, got {v!r}")


def _flag(section: str, obj: Any, name: str) -> None:
    v = getattr(obj, name)
    if not isinstance(v, bool):
        raise ConfigError(f"{section}.{name} must be True or False, got {v!r}")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """System 1 (and its frozen reference).

    Attributes:
      checkpoint: local Hugging Face directory of a Qwen2.5-Omni (Thinker) checkpoint; None = random init of
        ``preset`` (tests, the CPU demo).
      preset: ``tiny`` | ``qwen2_5_omni_3b`` | ``qwen2_5_omni_7b`` (used when ``checkpoint`` is None).
      tokenizer: local tokenizer directory; None = the checkpoint's, or the tiny offline tokenizer for ``tiny``.
      dtype: the dtype the policy computes in: forward passes, sampling, scoring (``float32`` | ``bfloat16``;
        bfloat16 for the 7B / 3B recipes). Log-probs (pi_theta, pi_old, pi_ref) are float32 either way.
      param_dtype: the dtype the trained parameters are stored and updated in (``float32``, the default: float32
        master weights under ``bfloat16`` compute; AdamW's moments are float32 whatever this is). ``bfloat16``
        halves the weights' memory but an update smaller than half a bf16 ulp of a weight is lost (at lr 1e-6 a
        GRPO step then changes 0.3 % of the tiny model's elements instead of 17.7 %). The frozen GRPO reference is
        stored in ``dtype``: it is never updated, so a master copy would buy nothing.
      export_dtype: the dtype of the exported Hugging Face weights: ``auto`` (the dtype ``checkpoint`` was stored
        in, e.g. bfloat16 for the released Qwen2.5-Omni; ``param_dtype`` for a preset), ``float32`` or
        ``bfloat16``.
      remat: rematerialise decoder layers (and vision blocks) in the update: False, True (everything recomputed
        in the backward pass) or ``"dots"`` (the projections' outputs kept, the rest recomputed: one fewer
        forward through the matmuls for somewhat more memory; see ``text.remat_call``).
      overrides: keyword arguments of the ``tiny`` preset (``vocab_size``, ``hidden_size``, ``num_layers``,
        ``tie_word_embeddings``, ``vision_depth``, ``audio_layers``), e.g. ``(("num_layers", 4),)``.
    """

    checkpoint: str | None = None
    preset: str = "tiny"
    tokenizer: str | None = None
    dtype: str = "float32"
    remat: bool | str = False
    overrides: tuple[tuple[str, Any], ...] = ()
    param_dtype: str = "float32"
    export_dtype: str = "auto"

    def __post_init__(self):
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in ("float32", "bfloat16"):
                raise ConfigError(f"model.{name} must be float32 or bfloat16, got {getattr(self, name)!r}")
        if self.export_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"model.export_dtype must be auto, float32 or bfloat16, got {self.export_dtype!r}")
        if self.remat not in (False, True, "dots") or not isinstance(self.remat, (bool, str)):
            raise ConfigError(f"model.remat must be true, false or 'dots', got {self.remat!r}")


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """Device mesh axes (docs/design.md §9.1). ``data = -1`` takes every device not used by fsdp x tensor.

    ``decode_gather``: sampling all-gathers the text decoder's weights over ``fsdp`` once per rollout, before
    its token loop, instead of at every token (costs the decoder's bytes / ``tensor`` of HBM per chip while
    decoding; on the 7B update's v5p meshes it lifts a decode step from 46 % to the HBM roofline's ~65 %,
    BENCHMARKS.md "Scale").

    ``shard_optimizer``: the AdamW moments are split over ``data`` as well as the weights' ``fsdp`` x ``tensor``
    (ZeRO stage 1): each chip updates 1 / ``data`` of every moment and the updates are gathered, instead of
    every data-parallel replica running the whole optimiser on the same numbers. Same results; less memory
    (the moments / ``data``) and fewer bytes moved per update (BENCHMARKS.md "Scale").

    ``update_gather`` (needs ``decode_gather``): the GRPO update and the scoring passes also read the text
    decoder's weights in the gathered layout, so each program gathers them over ``fsdp`` once, and reduces their
    gradient once, instead of in every forward and backward pass (``CompletionScorer.gather_weights``).
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    decode_gather: bool = False
    shard_optimizer: bool = False
    update_gather: bool = False

    def __post_init__(self):
        _int("mesh", self, "fsdp", 1)
        _int("mesh", self, "tensor", 1)
        _int("mesh", self, "data", -1)
        if not isinstance(self.decode_gather, bool):
            raise ConfigError(f"mesh.decode_gather must be true or false, got {self.decode_gather!r}")
        if not isinstance(self.shard_optimizer, bool):
            raise ConfigError(f"mesh.shard_optimizer must be true or false, got {self.shard_optimizer!r}")
        if not isinstance(self.update_gather, bool):
            raise ConfigError(f"mesh.update_gather must be true or false, got {self.update_gather!r}")
        if self.update_gather and not self.decode_gather:
            raise ConfigError(
                "mesh.update_gather=true reads the weights in decode_gather's layout: set mesh.decode_gather=true"
            )
        if self.data == 0:
            raise ConfigError("mesh.data must be -1 (every remaining device) or >= 1, got 0")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Training data.

    Attributes:
      dataset: ``synthetic`` | ``revos`` | ``mevis`` | ``refavs`` | ``refcocog`` | ``crossomni`` | ``mixture``
        (several VOS datasets, see ``mixture``).
      root: local dataset directory (for ``synthetic``: generated there when missing).
      split: reader split name.
      task: ``vos`` (keyframes + descriptions, SAM2 rewards) | ``refaid`` (first frame + audio, boxes only) |
        ``grounding`` (System-2 training in the style of SegZero: one image at ``s1_max_pixels`` (900*28*28 in
        the paper's refCOCOg run) + the expression -> box and two points, docs/design.md §3.9; no bridge) |
        ``qa`` (CrossOmni multiple choice) | ``vos_interactive`` (``vos`` with System 2's boxes fed back to System 1,
        which may revise its answer, up to ``grpo.max_turns`` answers) | ``mixture`` (several tasks in every
        batch, see ``tasks``).
      batch_size: prompts per step (each sampled ``grpo.group_size`` times).
      min_frames, max_frames: training clip length range (docs/design.md §6.1: 8..24).
      s1_max_pixels, s1_min_pixels: System-1 per-frame pixel budget (docs/design.md §6.2: 128*28*28, 16*28*28).
      workers: Grain worker processes (0 = in-process).
      synthetic_videos: videos to generate when ``dataset == "synthetic"`` and ``root`` is empty.
      synthetic_size: (H, W) of generated synthetic frames.
      synthetic_colours: palette colours the synthetic world draws from (None = all eight).
      synthetic_shapes: shapes the synthetic world draws from (None = circle, square, triangle).
      synthetic_objects: inclusive (min, max) objects per synthetic video.
      synthetic_templates: synthetic expression templates kept (None = all; the CPU demo keeps
        ``("colour_shape",)``, the referring expressions); with ``synthetic_ambiguous`` the kinds of ambiguous
        scene (``appears_order``, ``moves_direction``; None = both).
      synthetic_ambiguous: generate the ambiguous world (docs/design.md §8.5, ``python -m omnir1_jax.data.synthetic
        --ambiguous``): two look-alikes per video told apart only by when they appear or which way they move
        (``omnir1_jax.data.synthetic.ambiguous``); needs ``synthetic_objects[0] >= 2``.
      prompt: System-1 prompt, ``paper`` (Figure 3 / 4), ``short`` (a compact VOS prompt for tiny
        from-scratch policies) or ``minimal`` (one sentence ending with the expression; the CPU demo).
      mixture: with ``dataset == "mixture"``: the training sources as ``(dataset, directory)`` pairs, the
        directory relative to ``root`` (so ``root`` stays the one folder the bridge may read frames from), e.g.
        ``(("revos", "revos"), ("mevis", "mevis"))`` for the paper's ReVOS + MeViS run (Omni-R1 section 4.1).
        Datasets: ``revos``, ``mevis``, ``synthetic`` (VOS layouts; Ref-AVS clips use the audio pipeline and
        train in their own run). Ignored for other datasets.
      mixture_videos: videos drawn uniformly at random without replacement from the union of the sources'
        videos (every expression of a drawn video is kept), so each source's expected share is proportional to
        its size; 0 = every video (the paper: 2,600 ReVOS + MeViS videos, split between them unstated).
      mixture_seed: seed of that draw.
      balanced_subset: CrossOmni (``task = "qa"``): train on this many questions of the training split
        (``split``), drawn with ``balanced_subset_seed`` so that every source->target task has a similar number
        (:func:`omnir1_jax.data.crossomni.balanced_subset`; the paper's GRPO stage: 982); 0 = the whole split.
        Other splits (evaluation) are never subsampled.
      balanced_subset_seed: seed of that draw.
      qa_prompt: the instruction of multiple-choice questions: ``auto`` (CrossOmni: Table 17's, worded per
        source -> target direction; the other suites: ``plain``), ``table17``, ``default`` (CrossOmni section 3.1),
        ``cot`` (section 4.1: "Let's think step by step." + default) or ``plain`` (the question, the options and a
        request for the letter); see :mod:`omnir1_jax.crossomni.prompts`, :mod:`omnir1_jax.data.mcq`.
      thinking: append Omni-R1's *thinking* prompt (Table 7's reasoning cue) to multiple-choice questions.
      tasks: with ``task == "mixture"``: the tasks every batch mixes, as ``(task, dataset, directory, prompts)``
        entries: each task (``vos`` or ``refaid``) reads ``dataset`` from ``directory`` (relative to ``root``) and
        contributes ``prompts`` prompts to every batch (they sum to ``batch_size``; in a multi-process run each must
        be a multiple of the processes), scored by its own task; ignored unless ``task == "mixture"``. A ``vos``
        task may read ``mixture`` (the sources of
        ``mixture``, relative to ``root/directory``; directory ``"."`` for ``root`` itself). E.g. Omni-R1 Table
        6's joint run:
        ``(("refaid", "refavs", "refavs", 4), ("vos", "revos", "revos", 4))``. Every other data setting is shared.
      suites: with ``dataset == "suites"``: the multiple-choice evaluation suites evaluated together, each read
        from ``root/<name>`` (``omnibench``, ``videomme``, ``mvbench``, ``dailyomni``, ``worldsense``, ``avut``);
        the summary has one column per number of the paper's table (Omni-R1 Table 3, CrossOmni Table 10).
    """

    dataset: str = "synthetic"
    root: str = "data/synthetic"
    split: str = "train"
    task: str = "vos"
    batch_size: int = 2
    min_frames: int = 8
    max_frames: int = 24
    s1_max_pixels: int = 128 * 28 * 28
    s1_min_pixels: int = 16 * 28 * 28
    workers: int = 0
    synthetic_videos: int = 64
    synthetic_size: tuple[int, int] = (240, 426)
    synthetic_colours: tuple[str, ...] | None = None
    synthetic_shapes: tuple[str, ...] | None = None
    synthetic_objects: tuple[int, int] = (3, 5)
    synthetic_templates: tuple[str, ...] | None = None
    synthetic_ambiguous: bool = False
    prompt: str = "paper"
    pad_to_multiple: int = 256
    mixture: tuple[tuple[str, str], ...] = ()
    mixture_videos: int = 0
    mixture_seed: int = 0
    balanced_subset: int = 0
    balanced_subset_seed: int = 0
    qa_prompt: str = "auto"
    thinking: bool = False
    suites: tuple[str, ...] = ()
    tasks: tuple[tuple[str, str, str, int], ...] = ()

    def __post_init__(self):
        if self.qa_prompt not in ("auto", "table17", "default", "cot", "plain"):
            raise ConfigError(f"data.qa_prompt must be auto, table17, default, cot or plain, got {self.qa_prompt!r}")
        _flag("data", self, "thinking")
        if not (isinstance(self.suites, tuple) and all(isinstance(b, str) and b for b in self.suites)):
            raise ConfigError(f"data.suites must be a tuple of suite names, got {self.suites!r}")
        if self.dataset == "suites" and not self.suites:
            raise ConfigError("data.dataset='suites' needs data.suites, e.g. ('omnibench', 'videomme')")
        if not isinstance(self.balanced_subset, int) or self.balanced_subset < 0:
            raise ConfigError(f"data.balanced_subset must be an int >= 0, got {self.balanced_subset!r}")
        for name in ("batch_size", "min_frames", "max_frames", "s1_min_pixels", "synthetic_videos", "pad_to_multiple"):
            _int("data", self, name, 1)
        for name in ("workers", "mixture_seed"):
            _int("data", self, name, 0)
        _int("data", self, "s1_max_pixels", self.s1_min_pixels)
        self._check_pair("synthetic_size", 16)  # smaller frames leave the synthetic shapes a pixel or two wide
        self._check_pair("synthetic_objects", 1)
        if self.synthetic_objects[0] > self.synthetic_objects[1]:
            raise ConfigError(
                f"data.synthetic_objects must be (min, max) with min <= max, got {self.synthetic_objects!r}"
            )
        _flag("data", self, "synthetic_ambiguous")
        if self.synthetic_ambiguous and self.synthetic_objects[0] < 2:
            raise ConfigError(
                f"data.synthetic_ambiguous needs data.synthetic_objects[0] >= 2 (two look-alikes), got "
                f"{self.synthetic_objects!r}"
            )
        if self.task not in ("vos", "vos_interactive", "refaid", "grounding", "qa", "mixture"):
            raise ConfigError(
                f"data.task must be vos, vos_interactive, refaid, grounding, qa or mixture, got {self.task!r}"
            )
        if not 1 <= self.min_frames <= self.max_frames:
            raise ConfigError(f"need 1 <= data.min_frames <= data.max_frames, got {self.min_frames}, {self.max_frames}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.prompt not in ("paper", "short", "minimal"):
            raise ConfigError(f"data.prompt must be 'paper', 'short' or 'minimal', got {self.prompt!r}")
        self._check_mixture()
        self._check_tasks()

    def task_parts(self) -> list[tuple[str, DataSpec, int]]:
        """``(task, data spec, prompts per batch)`` of each task of a ``mixture`` (the spec reads that task's
        dataset from its directory and has ``batch_size = prompts``)."""
        return [
            (
                task,
                dataclasses.replace(
                    self,
                    task=task,
                    dataset=dataset,
                    batch_size=k,
                    tasks=(),
                    root=os.path.normpath(os.path.join(self.root, sub)),
                ),
                k,
            )
            for task, dataset, sub, k in self.tasks
        ]

    def _check_tasks(self) -> None:
        if self.task != "mixture":  # ignored (like ``mixture`` for other datasets), so --set data.task=... works
            return
        if not self.tasks:
            raise ConfigError(
                "data.task='mixture' needs data.tasks, e.g. (('refaid', 'refavs', 'refavs', 4), "
                "('vos', 'revos', 'revos', 4))"
            )
        datasets = {"vos": ("revos", "mevis", "synthetic", "mixture"), "refaid": ("refavs",)}
        seen = set()
        for i, entry in enumerate(self.tasks):
            if not (
                isinstance(entry, tuple)
                and len(entry) == 4
                and all(isinstance(x, str) for x in entry[:3])
                and isinstance(entry[3], int)
                and not isinstance(entry[3], bool)
            ):
                raise ConfigError(f"data.tasks[{i}] must be (task, dataset, directory, prompts), got {entry!r}")
            task, dataset, sub, k = entry
            if task not in datasets:
                raise ConfigError(f"data.tasks[{i}]: task {task!r} cannot be mixed (vos, refaid)")
            if dataset not in datasets[task]:
                raise ConfigError(f"data.tasks[{i}]: task {task!r} reads {', '.join(datasets[task])}, not {dataset!r}")
            parts = sub.replace("\\", "/").split("/")
            if not sub or os.path.isabs(sub) or ".." in parts:
                raise ConfigError(f"data.tasks[{i}]: directory {sub!r} must be a relative path inside data.root")
            if k < 1:
                raise ConfigError(f"data.tasks[{i}]: prompts per batch must be >= 1, got {k}")
            names = {d for d, _ in self.mixture} if dataset == "mixture" else {dataset}
            if names & seen:
                raise ConfigError(f"data.tasks[{i}]: dataset(s) {sorted(names & seen)} are used by two tasks")
            seen |= names
        total = sum(e[3] for e in self.tasks)
        if total != self.batch_size:
            raise ConfigError(f"data.tasks give {total} prompts per batch, data.batch_size is {self.batch_size}")

    def _check_pair(self, name: str, minimum: int) -> None:
        v = getattr(self, name)
        if not (
            isinstance(v, (tuple, list))
            and len(v) == 2
            and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= minimum for x in v)
        ):
            raise ConfigError(f"data.{name} must be two integers >= {minimum}, got {v!r}")

    def _check_mixture(self) -> None:
        if self.dataset == "mixture" and not self.mixture:
            raise ConfigError(
                "data.dataset='mixture' needs data.mixture, e.g. (('revos', 'revos'), ('mevis', 'mevis'))"
            )
        if self.mixture_videos < 0:
            raise ConfigError(f"data.mixture_videos must be >= 0 (0 = every video), got {self.mixture_videos}")
        seen = set()
        for i, entry in enumerate(self.mixture):
            if not (isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
                raise ConfigError(f"data.mixture[{i}] must be a (dataset, directory) pair of str, got {entry!r}")
            name, sub = entry
            if name not in ("revos", "mevis", "synthetic"):
                raise ConfigError(
                    f"data.mixture[{i}]: dataset {name!r} cannot be mixed (revos, mevis, synthetic; "
                    "Ref-AVS clips use the audio pipeline and train in their own run)"
                )
            parts = sub.replace("\\", "/").split("/")
            if not sub or os.path.isabs(sub) or ".." in parts:
                raise ConfigError(f"data.mixture[{i}]: directory {sub!r} must be a relative path inside data.root")
            if entry in seen:
                raise ConfigError(f"data.mixture[{i}]: {entry!r} is listed twice")
            seen.add(entry)


@dataclasses.dataclass(frozen=True)
class BridgeSpec:
    """System 2 + SAM2 (the PyTorch bridge).

    Attributes:
      start: start a local bridge subprocess; False = connect to ``addresses``.
      addresses: bridge addresses (``ipc://...`` or ``tcp://host:port``), round-robin.
      grounder: ``synthetic`` | ``qwen2_5_vl:PATH`` | ``qwen2_5_omni:PATH``; ``PATH = @policy`` means the System-1
        policy itself (Omni-R1 section 4.1: "Omni-R1 is serving as both System 1 and System 2" in evaluation,
        a frozen copy of the pretrained model during training). A bridge started by an entry point resolves it
        (:func:`omnir1_jax.runtime.bridge.resolve_grounder`): training and ``omnir1_jax.evaluate`` use
        ``model.checkpoint`` (``--policy DIR`` sets it), and ``omnir1_jax.train``'s evaluation after GRPO
        restarts the bridge on the exported policy ``<run.out_dir>/hf`` (multi-host: ``run.out_dir`` must be on a
        filesystem every host sees, process 0 writes the export). With ``start = False`` the remote bridge
        serves whatever grounder it was started with.
      segmenter: ``synthetic`` | ``sam2`` | ``none`` (a judge-only bridge, see ``sam2_bridge.serve --judge``).
      sam2_config, sam2_checkpoint: packaged SAM2 config name and local checkpoint (hiera_l in the paper).
      workers: bridge worker processes (one per GPU).
      timeout_s: deadline of one group query; retries: how often a failed query is retried.
      attempt_timeout_s: an attempt with no answer within this many seconds is re-sent; with several
        ``addresses`` (a pool) the bridge that let it pass is dropped from the pool with a warning and the query
        goes to another (``sam2_bridge.wire.pool``). 0 (default): ``timeout_s`` (one slow attempt fails the query).
      token_file: a file holding the shared token of a bridge started with ``--token-file`` (a remote pool
        reached with ``--allow-remote``); a local bridge started by the run is given the same file.
      grounder_plugins: grounder plug-ins (module names or ``.py`` files) a bridge started by the run imports
        before building ``grounder`` (``--grounder-plugin``; ``sam2_bridge.server.grounder`` documents the interface),
        e.g. ``("plugins/sa2va_grounder.py",)`` with ``grounder = "sa2va:checkpoints/Sa2VA-4B"``.
      s2_context: hand System 1's rationale (its ``<think>`` text) to System 2's grounding prompt (docs/design.md
        §8.5; off by default = the paper's one-way pipeline). Needs a bridge of protocol version >= 3.
      s2_context_chars: the rationale's budget in characters (``omnir1_jax.rewards.extract_rationale``), at most
        the protocol's ``MAX_CONTEXT_CHARS`` (4096); characters, not tokens, so the budget does not depend on
        System 2's tokenizer (English text is ~4 characters per token).
    """

    start: bool = True
    addresses: tuple[str, ...] = ()
    grounder: str = "synthetic"
    segmenter: str = "synthetic"
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_l.yaml"
    sam2_checkpoint: str | None = None
    workers: int = 1
    timeout_s: float = 600.0
    retries: int = 2
    token_file: str | None = None
    grounder_plugins: tuple[str, ...] = ()
    s2_context: bool = False
    s2_context_chars: int = 1024
    attempt_timeout_s: float = 0.0

    def __post_init__(self):
        _flag("bridge", self, "start")
        _flag("bridge", self, "s2_context")
        plugins = self.grounder_plugins
        if isinstance(plugins, str) or not all(isinstance(p, str) and p for p in plugins):
            raise ConfigError(f"bridge.grounder_plugins must be a tuple of module names / .py files, got {plugins!r}")
        _int("bridge", self, "s2_context_chars", 1)
        if self.s2_context_chars > MAX_CONTEXT_CHARS:
            raise ConfigError(
                f"bridge.s2_context_chars must be <= {MAX_CONTEXT_CHARS} (the bridge protocol's "
                f"MAX_CONTEXT_CHARS), got {self.s2_context_chars}"
            )
        _int("bridge", self, "workers", 1)
        _int("bridge", self, "retries", 0)
        _real("bridge", self, "timeout_s", 0.0, low_open=True)
        _real("bridge", self, "attempt_timeout_s", 0.0)
        if self.attempt_timeout_s > self.timeout_s:
            raise ConfigError(
                f"bridge.attempt_timeout_s = {self.attempt_timeout_s} must be <= bridge.timeout_s = "
                f"{self.timeout_s} (0 = timeout_s)"
            )


@dataclasses.dataclass(frozen=True)
class GRPOSpec:
    """GRPO (Omni-R1 section 3.2 / 4.1; docs/design.md §4)."""

    group_size: int = 8
    mu: int = 1
    beta: float = 0.04
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    kl: str = "k3"
    agg: str = "seq_mean_token_mean"
    adv_scale: str = "group"
    adv_eps: float = 1e-4
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    reward_preset: str = "paper"
    rewards: RewardWeights = RewardWeights()
    # Table 4's "exactly four keyframes": None = free (the prompt asks for "about 4"); K = the prompt asks for
    # exactly K moments and only the first K items of each answer are kept (rewards and System 2).
    num_keyframes: int | None = None
    # Multi-turn rollouts (task ``vos_interactive``): up to ``max_turns`` answers per rollout, System 2's boxes
    # fed back between them; ``turn_cost`` is subtracted from the reward once per revised answer.
    max_turns: int = 1
    turn_cost: float = 0.0
    # Gradient accumulation of the GRPO update: the batch's rows (batch_size x group_size) in this many equal
    # slices, one at a time (the same gradient, less activation memory). 0 = one slice per row that each device
    # would otherwise hold beyond the first: rows / devices slices (64 rows: 1 on a v5p-64 slice, 8 on a v5p-8).
    micro_batches: int = 1
    # verl's dual clip: for a negative advantage A the per-token policy loss is at most -clip_ratio_c * A
    # (None = off; must be > 1). Where an empty row (no completion token) counts in seq_mean_token_mean's divisor:
    # "batch" (TRL: all rows) or "nonempty" (verl, tunix). See omnir1_jax/rl/loss.py.
    clip_ratio_c: float | None = None
    empty_rows: str = "batch"
    # The grounding task's think/answer format term, length bonus and key matching (omnir1_jax/rewards/segzero.py).
    segzero: SegZeroSpec = SegZeroSpec()
    # Asynchronous rewards (omnir1_jax/overlap.py, docs/design.md §4.8): "off" (sample, score, update one after
    # another) or "one_step" (the bridge scores batch t while the learner samples batch t + 1 and updates on
    # batch t; each batch is updated on by the policy one version newer than the one that sampled it, and the
    # clipped ratio's pi_old is the sampler's log-probs). Off in every paper recipe.
    overlap: str = "off"

    def __post_init__(self):
        _int("grpo", self, "micro_batches", 0)
        if self.overlap not in ("off", "one_step"):
            raise ConfigError(f"grpo.overlap must be off or one_step, got {self.overlap!r}")
        if self.clip_ratio_c is not None and (
            isinstance(self.clip_ratio_c, bool)
            or not isinstance(self.clip_ratio_c, (int, float))
            or not self.clip_ratio_c > 1
        ):
            raise ConfigError(f"grpo.clip_ratio_c must be a number > 1 or None, got {self.clip_ratio_c!r}")
        if self.empty_rows not in ("batch", "nonempty"):
            raise ConfigError(f"grpo.empty_rows must be batch or nonempty, got {self.empty_rows!r}")
        _int("grpo", self, "max_turns", 1)
        _real("grpo", self, "turn_cost", 0.0)
        if self.num_keyframes is not None and (not isinstance(self.num_keyframes, int) or self.num_keyframes < 1):
            raise ConfigError(f"grpo.num_keyframes must be an int >= 1 or None, got {self.num_keyframes!r}")
        _int("grpo", self, "group_size", 2)
        _int("grpo", self, "mu", 1)
        _int("grpo", self, "top_k", 0)
        _int("grpo", self, "max_new_tokens", 1)
        for name in ("beta", "epsilon_low", "epsilon_high", "adv_eps"):
            _real("grpo", self, name, 0.0)
        _real("grpo", self, "temperature", 0.0, low_open=True)
        _real("grpo", self, "top_p", 0.0, 1.0, low_open=True)
        if self.reward_preset not in ("paper", "official"):
            raise ConfigError(f"grpo.reward_preset must be paper or official, got {self.reward_preset!r}")
        if self.kl not in ("k1", "k2", "k3"):
            raise ConfigError(f"grpo.kl must be k1, k2 or k3, got {self.kl!r}")
        if self.agg not in ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"):
            raise ConfigError(f"grpo.agg unknown: {self.agg!r}")
        if self.adv_scale not in ("group", "batch", "none"):
            raise ConfigError(f"grpo.adv_scale must be group, batch or none, got {self.adv_scale!r}")


@dataclasses.dataclass(frozen=True)
class OptimSpec:
    """AdamW (paper: lr 1e-6, weight decay 0.01); its moments are float32 whatever ``model.param_dtype`` is.

    Attributes:
      decay: which parameters weight decay applies to: ``matrices`` (the default, as transformers' and TRL's
        trainers do: every weight matrix / convolution kernel, never a bias or a norm scale) or ``all`` (every
        parameter, the optax default, this project's behaviour before the mask).
      decay_embeddings: with ``decay = "matrices"``, whether the token / special-token embedding tables decay too
        (True, as the peers do; False excludes them).
    The SFT stage uses the same mask with ``sft.weight_decay``.
    """

    lr: float = 1e-6
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int = 0
    grad_clip: float = 1.0
    decay: str = "matrices"
    decay_embeddings: bool = True

    def __post_init__(self):
        if self.decay not in ("matrices", "all"):
            raise ConfigError(f"optim.decay must be 'matrices' or 'all', got {self.decay!r}")
        _flag("optim", self, "decay_embeddings")
        _real("optim", self, "lr", 0.0, low_open=True)
        _real("optim", self, "eps", 0.0, low_open=True)
        _real("optim", self, "weight_decay", 0.0)
        _real("optim", self, "grad_clip", 0.0)  # 0 = no clipping
        for name in ("b1", "b2"):
            _real("optim", self, name, 0.0, 1.0, high_open=True)
        _int("optim", self, "warmup_steps", 0)


@dataclasses.dataclass(frozen=True)
class SFTSpec:
    """Supervised warm-up (CrossOmni: LoRA r16 alpha 32, lr 1e-5, batch 32; the CPU demo: answer format only).

    Attributes (synthetic-world targets, see :mod:`omnir1_jax.sft`):
      target: ``format_only`` (random keyframes, a random non-target object), ``any_object`` (random keyframes,
        a random object present: the target as often as any other, so the warm-up's answers are at chance),
        ``mixed`` (random keyframes, the target with probability ``target_rate``, else another object present) or
        ``oracle``; for the ``refaid``
        task also ``expression`` (any dataset: the answer format with the referring expression as the grounding
        description; Omni-R1 Table 1's SFT baseline).
      think: the ``<think>`` text of the targets; ``{description}`` is replaced by the answer's description and
        ``{instruction}`` by the text the prompt carries (the expression, or ``instruction``).
      keyframes: ``(min, max)``: how many single-frame items a ``format_only`` / ``any_object`` target holds
        (drawn uniformly per target; default 2 to 4).
      grad_clip, log_every, checkpoint_every: the warm-up's global-norm clip (0 = none), progress-line period and
        checkpoint period (0 = only at the end).
      target_rate: with ``target = "mixed"``: the probability that a target names the referred object.
      think_weight: the loss weight of the target tokens inside the answer's first ``<think>...</think>``
        relative to the other target tokens (1 = the plain token mean; the loss is the weighted token mean).
        A restated query is a few tokens among a long answer whose keyframes are random: its share of a plain
        token mean is too small for a tiny from-scratch policy to learn the copy reliably (the CPU demo).
      instruction: when set, the SFT prompts carry this text instead of the record's referring expression, so
        the warm-up cannot tie the answer to the expression in any way; ``{colour}`` / ``{shape}`` in it are
        drawn at random per record from the world's colours and shapes (``data.synthetic_colours`` /
        ``synthetic_shapes``; decoys, unrelated to the video), e.g. ``"the {colour} {shape}"``.
    """

    steps: int = 0
    lr: float = 1e-5
    batch_size: int = 8
    lora_rank: int = 0
    lora_alpha: float = 32.0
    weight_decay: float = 0.0
    target: str = "format_only"
    think: str = "the object is visible here"
    instruction: str | None = None
    keyframes: tuple[int, int] = (2, 4)
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 0
    target_rate: float = 0.0
    think_weight: float = 1.0

    def __post_init__(self):
        _real("sft", self, "grad_clip", 0.0)  # 0 = no clipping
        _real("sft", self, "think_weight", 0.0, low_open=True)
        _real("sft", self, "target_rate", 0.0, 1.0)
        _int("sft", self, "log_every", 1)
        _int("sft", self, "checkpoint_every", 0)  # 0 = only at the end
        k = self.keyframes
        if not (
            isinstance(k, tuple)
            and len(k) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in k)
            and 1 <= k[0] <= k[1]
        ):
            raise ConfigError(f"sft.keyframes must be (min, max) with 1 <= min <= max, got {k!r}")
        _int("sft", self, "steps", 0)
        _int("sft", self, "batch_size", 1)
        _int("sft", self, "lora_rank", 0)
        _real("sft", self, "lr", 0.0, low_open=True)
        _real("sft", self, "lora_alpha", 0.0, low_open=True)
        _real("sft", self, "weight_decay", 0.0)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Loop, checkpoints, logging, evaluation.

    ``steps = 0`` derives the number of steps from the data (:func:`derive_steps`): ``epochs`` passes over the
    training records, counted in ``epoch_unit``: ``"expressions"`` (every record once) or ``"videos"`` (one
    expression per video per epoch, as the released Omni-R1 data loader samples: its length is the number of
    videos and each item is a random expression of one video).

    ``seeds`` (e.g. ``(0, 1, 2, 3, 4)``, ``--seeds 0-4``): train that many independent runs in one program
    (:mod:`omnir1_jax.seeds`), each with its own initialisation, data order and sampling key and its own outputs
    under ``<out_dir>/seed<k>/``; empty = one run with ``seed``.

    ``on_checkpoint_error``: what a checkpoint that cannot be written (a full disk, a file-size limit, a lost
    mount) does to the run. The failed save is always removed (the previous checkpoint stays intact) and a line
    names the step and the error; then ``"stop"`` (default) ends the run with that line and exit status 2, and
    ``"continue"`` trains on and tries again at the next checkpoint step (a restart then resumes from the last
    checkpoint that was written).
    """

    steps: int = 100
    epochs: float = 1.0
    epoch_unit: str = "expressions"
    seed: int = 0
    out_dir: str = "runs/default"
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    eval_every: int = 0
    eval_split: str = "valid"
    eval_max_expressions: int = 0
    log_every: int = 1
    resume: bool = True
    seeds: tuple[int, ...] = ()
    on_checkpoint_error: str = "stop"

    def __post_init__(self):
        if not (
            isinstance(self.seeds, tuple)
            and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in self.seeds)
        ) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"run.seeds must be a tuple of distinct integers >= 0, got {self.seeds!r}")
        for name in ("steps", "seed", "checkpoint_every", "eval_every", "eval_max_expressions"):
            _int("run", self, name, 0)  # checkpoint_every / eval_every 0 = never
        _int("run", self, "keep_checkpoints", 1)
        _int("run", self, "log_every", 1)
        _flag("run", self, "resume")
        if not isinstance(self.out_dir, str) or not self.out_dir:
            raise ConfigError(f"run.out_dir must be a non-empty path, got {self.out_dir!r}")
        _real("run", self, "epochs", 0.0, low_open=True)
        if self.epoch_unit not in ("expressions", "videos"):
            raise ConfigError(f"run.epoch_unit must be 'expressions' or 'videos', got {self.epoch_unit!r}")
        if self.on_checkpoint_error not in ("stop", "continue"):
            raise ConfigError(f"run.on_checkpoint_error must be 'stop' or 'continue', got {self.on_checkpoint_error!r}")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-4"`` -> ``(0, 1, 2, 3, 4)``; ``"0,2,7"`` and ``"3"`` as listed; ranges and lists combine
    (``"0-2,9"``). Raises :class:`ConfigError` naming the text when it is not that."""
    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: expected a range like 0-4 or a list like 0,2,7 of integers >= 0"
        ) from None
    if any(k < 0 for k in out) or len(set(out)) != len(out) or not out:
        raise ConfigError(f"--seeds {text!r}: expected distinct integers >= 0")
    return tuple(out)


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """Seed ``seed``'s run of a seed-parallel experiment: ``run.seed = seed``, ``run.seeds = ()`` and its
    outputs under ``<run.out_dir>/seed<seed>``."""
    run = dataclasses.replace(cfg.run, seed=int(seed), seeds=(), out_dir=os.path.join(cfg.run.out_dir, f"seed{seed}"))
    return dataclasses.replace(cfg, run=run)


def derive_steps(run: RunSpec, *, num_expressions: int, num_videos: int, global_batch: int) -> int:
    """Optimizer steps of a run: ``run.steps`` when > 0, else ``ceil(run.epochs * units / global_batch)`` with
    units = ``num_videos`` or ``num_expressions`` (``run.epoch_unit``); at least 1.

    E.g. the paper's one epoch over 2,600 videos at batch 8: ``ceil(2600 / 8) = 325`` steps.

    Raises:
      ConfigError: the data is empty or ``global_batch < 1`` while the steps are to be derived.
    """
    if run.steps > 0:
        return run.steps
    units = num_videos if run.epoch_unit == "videos" else num_expressions
    if units < 1 or global_batch < 1:
        raise ConfigError(
            f"cannot derive run.steps from {units} training {run.epoch_unit} at batch size {global_batch}"
        )
    # round() first so that e.g. 0.1 * 30 / 3 (= 1.0000000000000002) does not ceil to 2
    return max(1, math.ceil(round(run.epochs * units / global_batch, 9)))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment.

    ``paper``: the numbers the paper reports for this row, e.g. ``(("J&F", 39.9),)`` (Omni-R1 Table 4's R_K + R_G
    row); ``python -m omnir1_jax.sweep`` prints them next to the measured intervals (empty: none).
    """

    name: str = "default"
    model: ModelSpec = ModelSpec()
    mesh: MeshSpec = MeshSpec()
    data: DataSpec = DataSpec()
    bridge: BridgeSpec = BridgeSpec()
    grpo: GRPOSpec = GRPOSpec()
    optim: OptimSpec = OptimSpec()
    sft: SFTSpec = SFTSpec()
    run: RunSpec = RunSpec()
    paper: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if not (
            isinstance(self.paper, tuple)
            and all(
                isinstance(p, tuple)
                and len(p) == 2
                and isinstance(p[0], str)
                and isinstance(p[1], (int, float))
                and not isinstance(p[1], bool)
                for p in self.paper
            )
        ):
            raise ConfigError(f"paper must be a tuple of (metric, number) pairs, got {self.paper!r}")


def split_variant(spec: str | os.PathLike) -> tuple[str, str | None]:
    """``"experiments/table4.py:rk_rg"`` -> ``("experiments/table4.py", "rk_rg")``; a spec without ``:VARIANT``
    (or naming an existing file as a whole) -> ``(spec, None)``."""
    spec = os.fspath(spec)
    path, sep, variant = spec.rpartition(":")
    if (
        not sep
        or os.path.isfile(spec)
        or not path.endswith(".py")
        or not variant
        or "/" in variant
        or os.sep in variant
    ):
        return spec, None
    return path, variant


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Import ``path`` (a Python file defining ``get_config()``), call it, apply ``overrides``.

    ``path`` may end in ``:VARIANT`` (``experiments/table4.py:rk_rg``): then ``get_config(VARIANT)`` is called;
    without one, ``get_config()``. A variant given to a file whose ``get_config`` takes no argument, a variant the
    file's ``VARIANTS`` does not list, and no variant for a file whose ``get_config`` needs one are
    :class:`ConfigError` s naming the file (and the known variants).
    """
    path, variant = split_variant(path)
    spec_text = path if variant is None else f"{path}:{variant}"
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_omnir1_experiment_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as e:
        raise ConfigError(f"{path}: failed to import: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: defines no get_config()")
    known = tuple(getattr(module, "VARIANTS", ()))
    try:
        params = list(inspect.signature(module.get_config).parameters.values())
    except (TypeError, ValueError):  # a callable without a signature: let the call decide
        params = None
    if variant is None and params and params[0].default is inspect.Parameter.empty:
        choices = f" with VARIANT one of {', '.join(known)}" if known else ""
        raise ConfigError(f"{path} has variants: use {path}:VARIANT{choices}")
    if variant is not None:
        if params is not None and not params:
            raise ConfigError(
                f"{spec_text}: {path} has no variants (its get_config() takes no argument), got variant {variant!r}"
            )
        if known and variant not in known:
            raise ConfigError(f"{spec_text}: unknown variant {variant!r}; known: {', '.join(known)}")
    try:
        cfg = module.get_config() if variant is None else module.get_config(variant)
    except ConfigError as e:
        raise ConfigError(f"{spec_text}: {e}") from e
    except Exception as e:
        raise ConfigError(f"{spec_text}: get_config() failed: {type(e).__name__}: {e}") from e
    if not isinstance(cfg, ExperimentConfig):
        raise ConfigError(f"{spec_text}: get_config() returned {type(cfg).__name__}, not ExperimentConfig")
    return apply_overrides(cfg, overrides)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"--set {key}: {value!r} does not fit {annotation}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"--set {key}: expected a tuple, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"--set {key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args or [Any] * len(value)))
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    if annotation in (int, float) and isinstance(value, bool):  # bool is an int subclass; True is not a count
        raise ConfigError(f"--set {key}: {value!r} is not a {annotation.__name__}")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(f"--set {key}: {value!r} is not a {getattr(annotation, '__name__', annotation)}")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text in ("none", "null"):
            return None
        if text in ("true", "false"):
            return text == "true"
        return text


def _set(obj: Any, parts: list[str], value_text: str, key: str) -> Any:
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"--set {key}: {'.'.join(parts)} is not a config section")
    hints = typing.get_type_hints(type(obj))
    name = parts[0]
    if name not in hints:
        raise ConfigError(f"--set {key}: unknown field {name!r} of {type(obj).__name__}; known: {sorted(hints)}")
    if len(parts) == 1:
        value = _coerce(_parse_value(value_text), hints[name], key)
    else:
        value = _set(getattr(obj, name), parts[1:], value_text, key)
    try:
        return dataclasses.replace(obj, **{name: value})
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--set {key}: {e}") from e


def apply_overrides(cfg: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """Apply ``key.path=value`` overrides (Python literals; bare words are strings)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        cfg = _set(cfg, key.strip().split("."), value.strip(), key.strip())
    return cfg


def to_dict(cfg: Any) -> Any:
    """A JSON-serialisable view of a config (for logs and checkpoints)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    return cfg
