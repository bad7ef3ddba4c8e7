"""Build the pieces of a run from an :class:`~omnir1_jax.config.ExperimentConfig`: tokenizer, policy and its
frozen reference, records and Grain pipelines, the bridge (started as a subprocess or connected to)."""

from __future__ import annotations

import atexit
import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp

from omnir1_jax.config import BridgeSpec, ConfigError, DataSpec, MeshSpec, ModelSpec

log = logging.getLogger("omnir1_jax")

# The model-side services moved to omnir1_jax.policy; re-exported here for existing callers.
from omnir1_jax.policy import build_model_config, build_policy, build_tokenizer, frozen_copy  # noqa: E402,F401


def build_mesh(spec: MeshSpec):
    """A (data, fsdp, tensor) mesh over all devices, or None on a single device."""
    n = jax.device_count()
    if n == 1:
        return None
    from omnir1_jax.models.qwen2_5_omni import make_mesh

    fsdp, tensor = spec.fsdp, spec.tensor
    data = spec.data if spec.data > 0 else n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ConfigError(f"mesh data={data} x fsdp={fsdp} x tensor={tensor} != {n} devices")
    return make_mesh((data, fsdp, tensor))


# ------------------------------------------------------------------------------------------------ data
def ensure_synthetic(spec: DataSpec, *, min_frames: int = 24, max_frames: int = 48, seed: int = 0) -> str:
    """Generate the synthetic world under ``spec.root`` if it is not there yet; returns the root.

    A world already there must have been drawn with the same colours, shapes, object counts and expression
    templates (its ``synthetic_objects.json`` records them); otherwise a :class:`ConfigError` names the differing
    fields — delete the folder or point ``data.root`` elsewhere. (Size, length and count are not checked: a
    world written with ``python -m omnir1_jax.data.synthetic`` may be used as it is.)"""
    from omnir1_jax.data.synthetic import writer

    h, w = spec.synthetic_size
    want = writer.world_params(spec.synthetic_videos, seed, h, w, min_frames, max_frames, spec.synthetic_colours,
                               spec.synthetic_objects, spec.synthetic_templates, spec.synthetic_shapes,
                               ambiguous=spec.synthetic_ambiguous)
    marker = os.path.join(spec.root, "meta_expressions_train_.json")
    if not os.path.exists(marker):
        print(f"[data] generating {spec.synthetic_videos} synthetic videos ({h}x{w}) in {spec.root}", flush=True)
        writer.write_vos(spec.root, spec.synthetic_videos, seed=seed, height=h, width=w, min_frames=min_frames,
                         max_frames=max_frames, overwrite=True, colours=spec.synthetic_colours,
                         objects=spec.synthetic_objects, templates=spec.synthetic_templates,
                         shapes=spec.synthetic_shapes, ambiguous=spec.synthetic_ambiguous)
        return spec.root
    oracle = os.path.join(spec.root, writer.ORACLE_FILE)
    try:
        with open(oracle) as f:
            have = json.load(f).get("params")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{oracle}: cannot read the synthetic world's parameters ({e})") from None
    if have is not None:  # worlds written before the ambiguous generator existed lack the key: not ambiguous
        have = dict(have, ambiguous=bool(have.get("ambiguous", False)))
    diff = sorted(k for k in ("colours", "shapes", "objects", "templates", "ambiguous")
                  if have is not None and have.get(k) != want[k])
    if diff:
        raise ConfigError(f"{spec.root} holds a synthetic world generated with other parameters "
                          f"({', '.join(f'{k}: {have.get(k)!r} != {want[k]!r}' for k in diff)}); delete it or set "
                          f"data.root to another folder")
    return spec.root


def read_records(spec: DataSpec, split: str | None = None):
    """Expression records of ``split`` (default ``spec.split``) from the dataset named in ``spec``."""
    from omnir1_jax import data as D

    split = split or spec.split
    if spec.task == "mixture":  # every task's records, in task order (each keeps its dataset name)
        return [r for _, part, _ in spec.task_parts() for r in read_records(part, split)]
    if spec.dataset == "mixture":
        return read_mixture(spec, split)
    if spec.dataset == "synthetic":
        ensure_synthetic(spec)
        return D.read_revos(spec.root, split, dataset="synthetic")
    if spec.dataset == "revos":
        return D.read_revos(spec.root, split)
    if spec.dataset == "mevis":
        return D.read_mevis(spec.root, split)
    if spec.dataset == "refavs":
        return D.read_refavs(spec.root, split)
    if spec.dataset == "refcocog":
        # REFER layout under root: refs(umd).p, instances.json and the COCO train2014 images.
        return D.read_refcocog(os.path.join(spec.root, "refs(umd).p"), os.path.join(spec.root, "instances.json"),
                               os.path.join(spec.root, "train2014"), split)
    raise ConfigError(f"data.dataset={spec.dataset!r} has no expression reader (use revos, mevis, refavs, "
                      "refcocog, synthetic)")


def resolve_steps(cfg, records, global_batch: int | None = None) -> int:
    """The run's optimizer steps for these training ``records`` (:func:`omnir1_jax.config.derive_steps`):
    ``cfg.run.steps`` when > 0, else ``cfg.run.epochs`` passes over the records' expressions or videos (a video
    = one ``(dataset, video_id)``) at ``global_batch`` (default ``cfg.data.batch_size``) examples per step."""
    from omnir1_jax.config import derive_steps

    # a video: (dataset, video_id) of an expression record, or the clip of a CrossOmni question
    videos = {(getattr(r, "dataset", ""), getattr(r, "video_id", None) or getattr(r, "video", None)) for r in records}
    return derive_steps(cfg.run, num_expressions=len(records), num_videos=len(videos),
                        global_batch=global_batch or cfg.data.batch_size)


def one_expression_per_video(records, seed: int, epoch: int = 0) -> list:
    """One record per video (``(dataset, video_id)``), drawn uniformly among that video's expressions with a
    generator seeded by ``(seed, epoch)``; videos keep their first-appearance order. The training records of one
    epoch when ``run.epoch_unit == "videos"`` (the released data loader's sampling)."""
    import numpy as np

    by_video: dict = {}
    for r in records:
        by_video.setdefault((r.dataset, r.video_id), []).append(r)
    rng = np.random.default_rng([seed, epoch])
    return [recs[int(rng.integers(len(recs)))] for recs in by_video.values()]


def read_mixture(spec: DataSpec, split: str | None = None):
    """Records of the mixture ``spec.mixture`` (``(dataset, directory under spec.root)`` sources, each read with
    its own reader): every video of every source when ``spec.mixture_videos == 0``, else that many videos drawn
    uniformly without replacement from the union (seed ``spec.mixture_seed``; a drawn video keeps all its
    expressions). Records keep their source's ``dataset`` name and come in source order. A ``synthetic`` source
    must already exist (it is not generated).

    Raises:
      ConfigError: two sources yield the same record key, or more videos are asked for than there are.
    """
    import dataclasses

    import numpy as np

    from omnir1_jax.data import read_revos

    def read(name: str, root: str):  # a synthetic source is read as it is on disk (never generated here)
        if name == "synthetic":
            return read_revos(root, split, dataset="synthetic")
        return read_records(dataclasses.replace(spec, dataset=name, root=root, mixture=()), split)

    split = split or spec.split
    sources = [(name, sub, read(name, os.path.join(spec.root, sub))) for name, sub in spec.mixture]
    seen: dict[str, str] = {}
    videos: list[tuple[int, str]] = []
    for i, (name, sub, recs) in enumerate(sources):
        for r in recs:
            if seen.setdefault(r.key, sub) != sub:
                raise ConfigError(f"data.mixture: record {r.key} is in both {seen[r.key]!r} and {sub!r}")
        videos += list(dict.fromkeys((i, r.video_id) for r in recs))
    n = spec.mixture_videos
    if n > len(videos):
        raise ConfigError(f"data.mixture_videos={n} but the sources hold {len(videos)} {split!r} videos "
                          f"({', '.join(f'{sub}: {len({r.video_id for r in recs})}' for _, sub, recs in sources)})")
    keep = set(videos)
    if n:
        picked = np.random.default_rng(spec.mixture_seed).choice(len(videos), size=n, replace=False)
        keep = {videos[int(j)] for j in picked}
    out = [r for i, (_, _, recs) in enumerate(sources) for r in recs if (i, r.video_id) in keep]
    counts = ", ".join(f"{sub}: {sum(1 for j, _ in keep if j == i)} videos" for i, (_, sub, _) in enumerate(sources))
    log.info("[data] mixture %s: %s, %d expressions", split, counts, len(out))
    return out


def pipeline_config(spec: DataSpec, *, train: bool, seed: int, batch_size: int | None = None,
                    num_epochs: int | None = None, num_keyframes: int | None = None, split: str | None = None,
                    share: tuple[int, int] = (0, 1)):
    """The Grain ``PipelineConfig`` of ``spec``; ``num_keyframes`` is ``grpo.num_keyframes`` (the prompt asks for
    exactly that many moments); ``split`` (default: ``spec.split`` when training) names the records' split in the
    error an empty split raises; ``share = (i, n)``: this process's block of each batch (``PipelineConfig.share``)."""
    from omnir1_jax.data import PipelineConfig

    split = split or (spec.split if train else None)
    source = f"data.dataset={spec.dataset!r}" + (f", split {split!r}" if split else "") + f" under {spec.root}"

    return PipelineConfig(
        task="grounding" if spec.task == "grounding" else "avs" if spec.dataset == "refavs" else "vos",
        train=train,
        batch_size=batch_size or spec.batch_size,
        seed=seed,
        min_frames=spec.min_frames,
        max_frames=spec.max_frames,
        eval_max_frames=spec.max_frames,
        s1_min_pixels=spec.s1_min_pixels,
        s1_max_pixels=spec.s1_max_pixels,
        visual_mode="image" if spec.task in ("refaid", "grounding") else "video",
        num_epochs=num_epochs,
        num_workers=spec.workers,
        keep_frames=True,
        drop_remainder=train,
        pad_to_multiple=spec.pad_to_multiple,
        share=tuple(share),
        prompt=spec.prompt,
        num_keyframes=num_keyframes,
        source=source,
        source_path=spec.root,
    )


# ---------------------------------------------------------------------------------------------- bridge
class Bridge:
    """A bridge client, plus the local server process when this run started one."""

    def __init__(self, client: Any, server: Any | None):
        self.client, self.server = client, server

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()


POLICY = "@policy"


def uses_policy_grounder(spec: BridgeSpec) -> bool:
    """Whether ``spec.grounder`` names the System-1 policy itself (``KIND:@policy``)."""
    return spec.grounder.partition(":")[2] == POLICY


def resolve_grounder(spec: BridgeSpec, policy_dir: str | None) -> BridgeSpec:
    """``spec`` with ``KIND:@policy`` replaced by ``KIND:<policy_dir>``, the local Hugging Face directory of the
    policy that System 2 is to be (Omni-R1 section 4.1: the trained model serves as System 1 and System 2 in
    evaluation; a frozen copy of the pretrained model during training). ``spec`` itself for any other grounder,
    and with ``bridge.start = False``: a remote bridge serves the grounder it was started with (start it with
    ``--grounder qwen2_5_omni:DIR`` on the policy's directory).

    Raises:
      ConfigError: ``@policy`` with no directory to resolve it to.
    """
    if not uses_policy_grounder(spec) or not spec.start:
        return spec
    if not policy_dir:
        raise ConfigError(f"bridge.grounder={spec.grounder!r} (System 2 = the policy) needs the policy as a local "
                          "Hugging Face directory: set model.checkpoint (or pass --policy DIR to "
                          "omnir1_jax.evaluate)")
    if not os.path.isdir(policy_dir):
        raise ConfigError(f"bridge.grounder={spec.grounder!r}: the policy directory {policy_dir} does not exist")
    import dataclasses

    kind = spec.grounder.partition(":")[0]
    return dataclasses.replace(spec, grounder=f"{kind}:{os.path.abspath(policy_dir)}")


def open_bridge(spec: BridgeSpec, run_dir: str, *, data_roots=(), wait_s: float = 300.0) -> Bridge:
    """Start a local bridge (``spec.start``) on an ipc socket in ``run_dir`` and connect, or connect to
    ``spec.addresses``. ``data_roots`` are the dataset roots the bridge may read frames from. Waits until the
    workers report ready. In a multi-process run every process starts its own local bridge
    (``bridge_p<i>.sock``). A local server that dies (even SIGKILL) is restarted by the client and the queries
    it held are re-sent (see :class:`sam2_bridge.client.BridgeClient`). A ``KIND:@policy`` grounder must be
    resolved first (:func:`resolve_grounder`)."""
    from sam2_bridge.client import BridgeClient, LocalServer

    if uses_policy_grounder(spec) and spec.start:
        raise ConfigError(f"bridge.grounder={spec.grounder!r} was not resolved to the policy's directory "
                          "(runtime.setup.resolve_grounder)")
    server = None
    addresses = list(spec.addresses)
    if spec.start:
        os.makedirs(run_dir, exist_ok=True)
        # one bridge per process: processes of a multi-host run may share a run directory (and a machine)
        name = "bridge.sock" if jax.process_count() == 1 else f"bridge_p{jax.process_index()}.sock"
        sock = os.path.join(os.path.abspath(run_dir), name)
        args = ["--address", f"ipc://{sock}", "--workers", str(spec.workers), "--grounder", spec.grounder,
                "--segmenter", spec.segmenter]
        if spec.token_file:
            args += ["--token-file", spec.token_file]
        for plugin in spec.grounder_plugins:  # imported in every worker before the grounder is built
            args += ["--grounder-plugin", plugin]
        for root in data_roots:
            args += ["--data-root", os.path.abspath(root)]
        if spec.segmenter == "sam2":
            args += ["--sam2-config", spec.sam2_config]
            if spec.sam2_checkpoint:
                args += ["--sam2-checkpoint", spec.sam2_checkpoint]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
        server = LocalServer(args, env=env, log_path=sock[:-len(".sock")] + ".log").start()
        atexit.register(server.stop)  # never leave an orphaned bridge behind when the trainer exits
        addresses = [f"ipc://{sock}"]
    if not addresses:
        raise ConfigError("bridge.start is False and bridge.addresses is empty")
    client = BridgeClient(addresses, deadline_s=spec.timeout_s, retries=spec.retries, local_server=server,
                          token_file=spec.token_file, attempt_timeout_s=spec.attempt_timeout_s or None)
    try:
        client.wait_ready(timeout_s=wait_s, workers=spec.workers if spec.start else 1)
    except Exception:
        client.close()
        if server is not None:
            server.stop()
        raise
    return Bridge(client, server)
