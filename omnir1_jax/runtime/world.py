"""Synthetic-world preparation for a run (docs/design.md §6): write the world a config names, or check that the
one already on disk was drawn with the same parameters."""

from __future__ import annotations

import json
import os

from omnir1_jax.config import ConfigError, DataSpec
from omnir1_jax.data.synthetic import writer


def ensure_synthetic(spec: DataSpec, *, min_frames: int = 24, max_frames: int = 48, seed: int = 0) -> str:
    """Generate the synthetic world under ``spec.root`` if it is not there yet; returns the root.

    A world already there must have been drawn with the same colours, shapes, object counts and expression
    templates (its ``synthetic_objects.json`` records them); otherwise a :class:`ConfigError` names the differing
    fields — delete the folder or point ``data.root`` elsewhere. (Size, length and count are not checked: a
    world written with ``python -m omnir1_jax.data.synthetic`` may be used as it is.)"""
    h, w = spec.synthetic_size
    want = writer.world_params(
        spec.synthetic_videos,
        seed,
        h,
        w,
        min_frames,
        max_frames,
        spec.synthetic_colours,
        spec.synthetic_objects,
        spec.synthetic_templates,
        spec.synthetic_shapes,
        ambiguous=spec.synthetic_ambiguous,
    )
    marker = os.path.join(spec.root, "meta_expressions_train_.json")
    if not os.path.exists(marker):
        print(f"[data] generating {spec.synthetic_videos} synthetic videos ({h}x{w}) in {spec.root}", flush=True)
        writer.write_vos(
            spec.root,
            spec.synthetic_videos,
            seed=seed,
            height=h,
            width=w,
            min_frames=min_frames,
            max_frames=max_frames,
            overwrite=True,
            colours=spec.synthetic_colours,
            objects=spec.synthetic_objects,
            templates=spec.synthetic_templates,
            shapes=spec.synthetic_shapes,
            ambiguous=spec.synthetic_ambiguous,
        )
        return spec.root
    oracle = os.path.join(spec.root, writer.ORACLE_FILE)
    try:
        with open(oracle) as f:
            have = json.load(f).get("params")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{oracle}: cannot read the synthetic world's parameters ({e})") from None
    if have is not None:  # worlds written before the ambiguous generator existed lack the key: not ambiguous
        have = dict(have, ambiguous=bool(have.get("ambiguous", False)))
    diff = sorted(
        k
        for k in ("colours", "shapes", "objects", "templates", "ambiguous")
        if have is not None and have.get(k) != want[k]
    )
    if diff:
        raise ConfigError(
            f"{spec.root} holds a synthetic world generated with other parameters "
            f"({', '.join(f'{k}: {have.get(k)!r} != {want[k]!r}' for k in diff)}); delete it or set "
            f"data.root to another folder"
        )
    return spec.root
