"""Build the pieces of a run from an :class:`~omnir1_jax.config.ExperimentConfig`: tokenizer, policy and its
frozen reference, records and Grain pipelines, the bridge (started as a subprocess or connected to)."""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from omnir1_jax.config import BridgeSpec, ConfigError, DataSpec, MeshSpec, ModelSpec

log = logging.getLogger("omnir1_jax")

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ----------------------------------------------------------------------------------------------- model
def build_tokenizer(spec: ModelSpec):
    """The checkpoint's tokenizer from a local directory, or the tiny offline one for the ``tiny`` preset."""
    path = spec.tokenizer or spec.checkpoint
    if path:
        if not os.path.isdir(path):
            raise ConfigError(f"model.tokenizer / model.checkpoint: no such directory: {path}")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    if spec.preset != "tiny":
        raise ConfigError(f"model.preset={spec.preset!r} without a checkpoint needs model.tokenizer (a local dir)")
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer(int(dict(spec.overrides).get("vocab_size", 512)))


def build_model_config(spec: ModelSpec):
    from omnir1_jax.models import qwen2_5_omni as q

    if spec.checkpoint:
        return q.Qwen2_5OmniConfig.from_pretrained(spec.checkpoint)
    presets = {"tiny": q.tiny, "qwen2_5_omni_3b": q.qwen2_5_omni_3b, "qwen2_5_omni_7b": q.qwen2_5_omni_7b}
    if spec.preset not in presets:
        raise ConfigError(f"model.preset must be one of {sorted(presets)}, got {spec.preset!r}")
    kwargs = dict(spec.overrides)
    if kwargs and spec.preset != "tiny":
        raise ConfigError("model.overrides only applies to the tiny preset (vocab_size, hidden_size, num_layers)")
    return presets[spec.preset](**kwargs)


def build_policy(spec: ModelSpec, *, seed: int = 0):
    """The System-1 policy: loaded from ``spec.checkpoint`` or randomly initialised from ``spec.preset``."""
    from omnir1_jax.models import qwen2_5_omni as q

    dtype = _DTYPES[spec.dtype]
    if spec.checkpoint:
        return q.from_hf(spec.checkpoint, dtype=dtype)
    return q.init_model(build_model_config(spec), seed=seed, dtype=dtype)


def frozen_copy(model: nnx.Module) -> nnx.Module:
    """An independent copy of ``model`` (the GRPO reference / System-2 copy); never updated."""
    return nnx.clone(model)


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
    """Generate the synthetic world under ``spec.root`` if it is not there yet; returns the root."""
    from omnir1_jax.data.synthetic import writer

    marker = os.path.join(spec.root, "meta_expressions_train_.json")
    if not os.path.exists(marker):
        h, w = spec.synthetic_size
        print(f"[data] generating {spec.synthetic_videos} synthetic videos ({h}x{w}) in {spec.root}", flush=True)
        writer.write_vos(spec.root, spec.synthetic_videos, seed=seed, height=h, width=w, min_frames=min_frames,
                         max_frames=max_frames, overwrite=True)
    return spec.root


def read_records(spec: DataSpec, split: str | None = None):
    """Expression records of ``split`` (default ``spec.split``) from the dataset named in ``spec``."""
    from omnir1_jax import data as D

    split = split or spec.split
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


def pipeline_config(spec: DataSpec, *, train: bool, seed: int, batch_size: int | None = None,
                    num_epochs: int | None = None):
    from omnir1_jax.data import PipelineConfig

    return PipelineConfig(
        task="avs" if spec.dataset == "refavs" else "vos",
        train=train,
        batch_size=batch_size or spec.batch_size,
        seed=seed,
        min_frames=spec.min_frames,
        max_frames=spec.max_frames,
        eval_max_frames=spec.max_frames,
        s1_min_pixels=spec.s1_min_pixels,
        s1_max_pixels=spec.s1_max_pixels,
        visual_mode="image" if spec.task == "refaid" else "video",
        num_epochs=num_epochs,
        num_workers=spec.workers,
        keep_frames=True,
        drop_remainder=train,
        pad_to_multiple=256,
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


def open_bridge(spec: BridgeSpec, run_dir: str, *, data_roots=(), wait_s: float = 300.0) -> Bridge:
    """Start a local bridge (``spec.start``) on an ipc socket in ``run_dir`` and connect, or connect to
    ``spec.addresses``. ``data_roots`` are the dataset roots the bridge may read frames from. Waits until the
    workers report ready."""
    from sam2_bridge.client import BridgeClient, LocalServer

    server = None
    addresses = list(spec.addresses)
    if spec.start:
        os.makedirs(run_dir, exist_ok=True)
        sock = os.path.join(os.path.abspath(run_dir), "bridge.sock")
        args = ["--address", f"ipc://{sock}", "--workers", str(spec.workers), "--grounder", spec.grounder,
                "--segmenter", spec.segmenter]
        for root in data_roots:
            args += ["--data-root", os.path.abspath(root)]
        if spec.segmenter == "sam2":
            args += ["--sam2-config", spec.sam2_config]
            if spec.sam2_checkpoint:
                args += ["--sam2-checkpoint", spec.sam2_checkpoint]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
        server = LocalServer(args, env=env, log_path=os.path.join(run_dir, "bridge.log")).start()
        atexit.register(server.stop)  # never leave an orphaned bridge behind when the trainer exits
        addresses = [f"ipc://{sock}"]
    if not addresses:
        raise ConfigError("bridge.start is False and bridge.addresses is empty")
    client = BridgeClient(addresses, deadline_s=spec.timeout_s, retries=spec.retries, local_server=server)
    try:
        client.wait_ready(timeout_s=wait_s, workers=spec.workers if spec.start else 1)
    except Exception:
        client.close()
        if server is not None:
            server.stop()
        raise
    return Bridge(client, server)
