"""The synthetic world: coloured shapes that enter, leave, occlude each other and change speed.

Pure numpy (no jax, no torch). The colours (:data:`PALETTE`; the names are the colour words of descriptions,
the values RGB), :data:`SHAPES` and :data:`BACKGROUND` are defined once in :mod:`sam2_bridge.wire.constants`,
which the bridge's synthetic grounder and segmenter read too (docs/design.md §10).

A scene is simulated first (object tracks in continuous coordinates), then rasterised exactly: object ``k``'s
GT mask on frame ``t`` is the set of its pixels not covered by an object drawn later (higher z), so masks
are disjoint and occlusion is real. Events used by the reasoning expressions (first / last frame in view,
speed) are computed from the rendered masks and only used when they are unambiguous by a margin.

Geometry (``s`` = half-extent in pixels, ``(cx, cy)`` = centre, pixel ``(x, y)`` at integer coordinates):
circle ``(x-cx)^2 + (y-cy)^2 <= s^2``; square ``|x-cx| <= s and |y-cy| <= s`` (axis-aligned);
triangle (upright isosceles, apex up) ``cy-s <= y <= cy+s and |x-cx| <= (y-(cy-s))/2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sam2_bridge.wire.constants import BACKGROUND, PALETTE, SHAPES

BACKGROUND_NOISE = 6  # uniform integer noise in [-6, 6] added per pixel and channel to the background only

DEFAULT_HEIGHT, DEFAULT_WIDTH = 240, 426


@dataclasses.dataclass(frozen=True)
class Track:
    """One object's trajectory: centre per frame (NaN where it is not in the scene) and half-extent."""

    obj_id: int
    colour: str
    shape: str
    half_extent: float
    centres: np.ndarray  # [L, 2] float (cx, cy); NaN rows = absent

    def __post_init__(self):
        if self.colour not in PALETTE:
            raise ValueError(f"colour={self.colour!r} not in PALETTE")
        if self.shape not in SHAPES:
            raise ValueError(f"shape={self.shape!r} not in SHAPES")

    @property
    def description(self) -> str:
        """Colour + shape words, the phrase System 2 can ground (e.g. ``"red circle"``)."""
        return f"{self.colour} {self.shape}"


def shape_mask(shape: str, cx: float, cy: float, s: float, height: int, width: int) -> np.ndarray:
    """Exact ``[H, W]`` bool raster of one shape (see the module docstring for the geometry)."""
    out = np.zeros((height, width), dtype=bool)
    x0, x1 = max(0, int(np.floor(cx - s))), min(width, int(np.ceil(cx + s)) + 1)
    y0, y1 = max(0, int(np.floor(cy - s))), min(height, int(np.ceil(cy + s)) + 1)
    if x0 >= x1 or y0 >= y1:
        return out
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    if shape == "circle":
        m = (xs - cx) ** 2 + (ys - cy) ** 2 <= s * s
    elif shape == "square":
        m = (np.abs(xs - cx) <= s) & (np.abs(ys - cy) <= s)
    elif shape == "triangle":
        m = (ys >= cy - s) & (ys <= cy + s) & (np.abs(xs - cx) <= (ys - (cy - s)) / 2.0)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    out[y0:y1, x0:x1] = m
    return out


def render(tracks: Sequence[Track], height: int, width: int, rng: np.random.Generator):
    """Rasterise tracks (later tracks drawn on top) -> (frames ``[L, H, W, 3]`` uint8, masks ``[K, L, H, W]`` bool)."""
    n_frames = tracks[0].centres.shape[0]
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((len(tracks), n_frames, height, width), dtype=bool)
    for t in range(n_frames):
        label = np.full((height, width), -1, dtype=np.int32)
        for k, tr in enumerate(tracks):
            cx, cy = tr.centres[t]
            if np.isnan(cx):
                continue
            label[shape_mask(tr.shape, cx, cy, tr.half_extent, height, width)] = k
        noise = rng.integers(-BACKGROUND_NOISE, BACKGROUND_NOISE + 1, size=(height, width, 3))
        img = np.clip(np.asarray(BACKGROUND, np.int32) + noise, 0, 255).astype(np.uint8)
        for k, tr in enumerate(tracks):
            sel = label == k
            masks[k, t] = sel
            img[sel] = PALETTE[tr.colour]
        frames[t] = img
    return frames, masks


def _piecewise_progress(n: int, rng: np.random.Generator) -> np.ndarray:
    """Progress u in [0, 1] over n steps with one speed change (ratio 0.4 or 2.5) at a random step."""
    if n <= 1:
        return np.zeros(max(n, 1))
    change = int(rng.integers(1, n)) if n > 2 else 1
    ratio = float(rng.choice([0.4, 2.5]))
    steps = np.where(np.arange(n - 1) < change - 1, 1.0, ratio)
    u = np.concatenate([[0.0], np.cumsum(steps)])
    return u / u[-1]


def _edge_point(rng, height, width, s):
    edge = int(rng.integers(4))
    if edge == 0:
        return np.array([-s - 2.0, rng.uniform(s, height - s)])
    if edge == 1:
        return np.array([width + s + 2.0, rng.uniform(s, height - s)])
    if edge == 2:
        return np.array([rng.uniform(s, width - s), -s - 2.0])
    return np.array([rng.uniform(s, width - s), height + s + 2.0])


def _inner_point(rng, height, width, s):
    return np.array([rng.uniform(s, width - s), rng.uniform(s, height - s)])


def simulate_tracks(
    rng: np.random.Generator,
    n_frames: int,
    height: int,
    width: int,
    n_objects: int,
    *,
    static: bool = False,
    colours: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
) -> list[Track]:
    """Random tracks: distinct colours, random shapes; objects enter from / leave through the frame edges.

    ``static=True`` (the audio-visual variant) keeps every object on screen for the whole clip, drifting slowly.
    ``colours`` / ``shapes`` restrict the colours / shapes drawn (default: all of :data:`PALETTE` / :data:`SHAPES`).
    """
    shapes = SHAPES if shapes is None else tuple(shapes)
    if not shapes or not set(shapes) <= set(SHAPES):
        raise ValueError(f"shapes {list(shapes)} must be a non-empty subset of {SHAPES}")
    palette = list(PALETTE) if colours is None else list(colours)
    unknown = [c for c in palette if c not in PALETTE]
    if unknown:
        raise ValueError(f"colours {unknown} not in PALETTE {list(PALETTE)}")
    if n_objects > len(palette):
        raise ValueError(f"n_objects={n_objects} exceeds the {len(palette)} available colours")
    colours = rng.choice(palette, size=n_objects, replace=False)
    tracks = []
    for k in range(n_objects):
        shape = shapes[int(rng.integers(len(shapes)))]
        s = float(rng.uniform(0.07, 0.12) * min(height, width))
        centres = np.full((n_frames, 2), np.nan)
        if static:
            a, b = _inner_point(rng, height, width, s), _inner_point(rng, height, width, s)
            b = a + 0.15 * (b - a)
            t_in, t_out = 0, n_frames - 1
        else:
            enters = rng.random() < 0.6
            leaves = rng.random() < 0.6
            t_in = int(rng.integers(1, max(2, n_frames // 2))) if enters else 0
            t_out = int(rng.integers(min(t_in + n_frames // 4, n_frames - 2), n_frames - 1)) if leaves else n_frames - 1
            t_out = max(t_out, t_in + 2)
            a = _edge_point(rng, height, width, s) if enters else _inner_point(rng, height, width, s)
            b = _edge_point(rng, height, width, s) if leaves else _inner_point(rng, height, width, s)
        u = _piecewise_progress(t_out - t_in + 1, rng)
        centres[t_in : t_out + 1] = a[None] + u[:, None] * (b - a)[None]
        tracks.append(Track(obj_id=k + 1, colour=str(colours[k]), shape=shape, half_extent=s, centres=centres))
    return tracks


@dataclasses.dataclass(frozen=True)
class ObjectEvents:
    """Per-object facts measured on the rendered masks (frame indices are positions in the clip)."""

    visible: np.ndarray  # [L] bool: at least one visible pixel
    area: np.ndarray  # [L] int
    first_visible: int  # -1 if never visible
    last_visible: int
    speed: float  # mean |centre displacement| per frame while in the scene (pixels / frame)


def object_events(track: Track, masks_k: np.ndarray) -> ObjectEvents:
    area = masks_k.reshape(masks_k.shape[0], -1).sum(-1)
    visible = area > 0
    idx = np.flatnonzero(visible)
    present = ~np.isnan(track.centres[:, 0])
    c = track.centres[present]
    speed = float(np.linalg.norm(np.diff(c, axis=0), axis=-1).mean()) if len(c) > 1 else 0.0
    return ObjectEvents(
        visible=visible,
        area=area.astype(np.int64),
        first_visible=int(idx[0]) if idx.size else -1,
        last_visible=int(idx[-1]) if idx.size else -1,
        speed=speed,
    )


@dataclasses.dataclass(frozen=True)
class Expression:
    """A generated expression: text, target object ids, ReVOS type (0 referring, 1 reasoning), template name."""

    text: str
    obj_ids: tuple[int, ...]
    type_id: int
    template: str


def _unique_extreme(values: dict[int, float], *, largest: bool, margin: float) -> int | None:
    if len(values) < 2:
        return None
    order = sorted(values, key=values.get, reverse=largest)
    best, second = values[order[0]], values[order[1]]
    return order[0] if abs(best - second) >= margin else None


VOS_TEMPLATES: tuple[str, ...] = (
    "colour_shape",
    "all_of_shape",
    "leaves_last",
    "appears_first",
    "fastest",
    "appears_after",
)


def vos_expressions(
    tracks: Sequence[Track], events: Sequence[ObjectEvents], rng: np.random.Generator
) -> list[Expression]:
    """Referring (colour + shape, multi-object) and reasoning expressions that need the whole clip to answer."""
    n_frames = events[0].visible.shape[0]
    ids = [tr.obj_id for tr in tracks]
    by_id = dict(zip(ids, zip(tracks, events)))
    seen = [i for i in ids if by_id[i][1].first_visible >= 0]
    out: list[Expression] = []
    for i in rng.permutation(seen)[:2]:
        tr = by_id[int(i)][0]
        out.append(Expression(f"the {tr.colour} {tr.shape}", (int(i),), 0, "colour_shape"))
    for shape in SHAPES:
        group = tuple(i for i in seen if by_id[i][0].shape == shape)
        if len(group) >= 2:
            out.append(Expression(f"all the {shape}s", group, 0, "all_of_shape"))
            break
    first = {i: by_id[i][1].first_visible for i in seen}
    last = {i: by_id[i][1].last_visible for i in seen}
    leavers = {i: v for i, v in last.items() if v < n_frames - 2}
    j = _unique_extreme(leavers, largest=True, margin=2)
    if j is not None:
        out.append(Expression("the shape that leaves last", (j,), 1, "leaves_last"))
    if 0 < sum(1 for v in first.values() if v == 0) <= 1:
        j = _unique_extreme(first, largest=False, margin=2)
        if j is not None:
            out.append(Expression("the shape that appears first", (j,), 1, "appears_first"))
    speeds = {i: by_id[i][1].speed for i in seen}
    ranked = sorted(speeds.values(), reverse=True)
    if len(ranked) >= 2 and ranked[0] >= 1.4 * ranked[1] and ranked[0] > 1.0:
        out.append(Expression("the fastest shape", (max(speeds, key=speeds.get),), 1, "fastest"))
    for a in seen:
        ref = by_id[a][0]
        for shape in SHAPES:
            later = [i for i in seen if i != a and by_id[i][0].shape == shape and first[i] >= first[a] + 2]
            near = [i for i in seen if i != a and by_id[i][0].shape == shape and abs(first[i] - first[a]) < 2]
            if len(later) == 1 and not near:
                text = f"the {shape} that appears after the {ref.colour} {ref.shape}"
                out.append(Expression(text, (later[0],), 1, "appears_after"))
                return out
    return out
