"""Ambiguous scenes: a world where the one-way System 1 -> System 2 pipeline fails (docs/design.md §8.5).

Every scene holds two *look-alikes* — the same colour, shape and size — plus 0 or more distractors of other
colours. The look-alikes differ only in time, so no single keyframe tells them apart:

- ``appears_order``: one look-alike is in view from the first frame, the other enters through the left or right
  edge between a quarter and a half of the clip and stays; expressions "the {colour} {shape} that appears
  first" / "... that appears second".
- ``moves_direction``: both are in view the whole clip, one moving left and the other moving right (each by at
  least a fifth of the width); expressions "the {colour} {shape} moving left" / "... moving right".

Each expression's target is exactly one of the two look-alikes. A System-1 description that only names the
colour and shape ("red circle") grounds BOTH on every keyframe where both are in view (the synthetic grounder
returns every match), so the answer is wrong unless System 1 picks keyframes where only the target is in view
or System 2 gets more context. The look-alikes move in separate horizontal bands (upper / lower half) and are
drawn above the distractors, so their masks are whole and never touch. Every claim an expression makes is checked
on the rendered masks (by a margin) and the scene is redrawn from the same generator otherwise, so a world is
still a function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omnir1_jax.data.synthetic import world

AMBIGUOUS_TEMPLATES: tuple[str, ...] = ("appears_order", "moves_direction")
_MAX_TRIES = 50


def _centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def _lookalike(rng, obj_id, colour, shape, s, n_frames, height, width, band, kind, role):
    """One look-alike's track in its band (0 upper, 1 lower half). ``role`` 0: the first / left-moving one."""
    lo, hi = (s + 2.0, height / 2 - s - 2.0) if band == 0 else (height / 2 + s + 2.0, height - s - 2.0)
    y = float(rng.uniform(lo, hi))
    centres = np.full((n_frames, 2), np.nan)
    xl, xr = s + 2.0, width - s - 2.0
    if kind == "moves_direction":
        span = float(rng.uniform(0.35, 0.6)) * (xr - xl)
        start = float(rng.uniform(xl + span, xr)) if role == 0 else float(rng.uniform(xl, xr - span))
        end = start - span if role == 0 else start + span
        u = np.linspace(0.0, 1.0, n_frames)
        centres[:, 0], centres[:, 1] = start + u * (end - start), y
    elif role == 0:  # appears first: in view from frame 0, drifting a little
        a = float(rng.uniform(xl, xr))
        b = float(np.clip(a + rng.uniform(-0.1, 0.1) * width, xl, xr))
        centres[:, 0], centres[:, 1] = np.linspace(a, b, n_frames), y
    else:  # appears second: enters through a side edge and stays in view
        t_in = int(rng.integers(max(2, n_frames // 4), max(3, n_frames // 2) + 1))
        from_left = bool(rng.random() < 0.5)
        a = -s - 2.0 if from_left else width + s + 2.0
        b = float(rng.uniform(xl, xr))
        centres[t_in:, 0] = np.linspace(a, b, n_frames - t_in)
        centres[t_in:, 1] = y
    return world.Track(obj_id=obj_id, colour=colour, shape=shape, half_extent=s, centres=centres)


def _draw(rng, n_frames, height, width, n_objects, palette, shapes, kinds):
    kind = kinds[int(rng.integers(len(kinds)))]
    colour = palette[int(rng.integers(len(palette)))]
    shape = shapes[int(rng.integers(len(shapes)))]
    n_distractors = n_objects - 2
    others = [c for c in palette if c != colour]
    distractors = (
        world.simulate_tracks(rng, n_frames, height, width, n_distractors, colours=others, shapes=shapes)
        if n_distractors
        else []
    )
    s = float(rng.uniform(0.07, 0.1) * min(height, width))
    bands = rng.permutation(2)
    ids = rng.permutation(2) + n_distractors + 1  # which id is the first / left one is not a clue
    pair = [
        _lookalike(rng, int(ids[r]), colour, shape, s, n_frames, height, width, int(bands[r]), kind, r)
        for r in range(2)
    ]
    return kind, distractors + pair  # look-alikes last: drawn on top, their masks whole


def _check(kind, tracks, masks, n_frames, width) -> bool:
    """The claims the scene's expressions make, measured on the rendered masks."""
    a, b = masks[-2], masks[-1]  # role 0 (first / left), role 1 (second / right)
    va, vb = a.reshape(n_frames, -1).any(-1), b.reshape(n_frames, -1).any(-1)
    if kind == "appears_order":
        if not va.all() or not vb.any():
            return False
        first_b = int(np.flatnonzero(vb)[0])
        # b in view from its first frame on, and long enough together with a for the ambiguity to matter
        return first_b >= 2 and vb[first_b:].all() and n_frames - first_b >= 3
    if not (va.all() and vb.all()):
        return False
    margin = 0.2 * width
    return (_centroid_x(a[-1]) - _centroid_x(a[0]) <= -margin) and (_centroid_x(b[-1]) - _centroid_x(b[0]) >= margin)


def simulate_ambiguous(
    rng: np.random.Generator,
    n_frames: int,
    height: int,
    width: int,
    n_objects: int,
    *,
    colours: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
):
    """``(kind, tracks, frames, masks, expressions)`` of one ambiguous scene with ``n_objects >= 2`` objects.

    ``kind`` is drawn from ``kinds`` (default: all of :data:`AMBIGUOUS_TEMPLATES`); ``tracks`` / ``masks`` list
    the distractors first and the two
    look-alikes last; ``frames`` / ``masks`` are :func:`world.render`'s. ValueError when the arguments cannot give
    a scene (too few objects or colours, frames too small for two bands)."""
    palette = list(world.PALETTE) if colours is None else list(colours)
    shapes = list(world.SHAPES) if shapes is None else list(shapes)
    if n_objects < 2 or n_objects - 1 > len(palette):
        raise ValueError(
            f"an ambiguous scene needs 2 <= objects <= colours + 1 (two look-alikes share a colour), "
            f"got objects={n_objects} with {len(palette)} colours"
        )
    kinds = list(AMBIGUOUS_TEMPLATES) if kinds is None else list(kinds)
    if not kinds or not set(kinds) <= set(AMBIGUOUS_TEMPLATES):
        raise ValueError(f"kinds {kinds} must be a non-empty subset of {AMBIGUOUS_TEMPLATES}")
    if height < 48 or width < 48:
        raise ValueError(f"an ambiguous scene needs frames of at least 48x48 (two bands), got {height}x{width}")
    for _ in range(_MAX_TRIES):
        kind, tracks = _draw(rng, n_frames, height, width, n_objects, palette, shapes, kinds)
        frames, masks = world.render(tracks, height, width, rng)
        if _check(kind, tracks, masks, n_frames, width):
            return kind, tracks, frames, masks, expressions(kind, tracks)
    raise ValueError(
        f"no ambiguous scene satisfied its checks in {_MAX_TRIES} draws ({n_frames} frames, {height}x{width})"
    )


def expressions(kind: str, tracks: Sequence[world.Track]) -> list[world.Expression]:
    """The two expressions of a scene, one per look-alike (reasoning type, ReVOS ``type_id`` 1)."""
    first, second = tracks[-2], tracks[-1]
    name = f"{first.colour} {first.shape}"
    words = (
        ("that appears first", "that appears second") if kind == "appears_order" else ("moving left", "moving right")
    )
    return [world.Expression(f"the {name} {w}", (tr.obj_id,), 1, kind) for w, tr in zip(words, (first, second))]
