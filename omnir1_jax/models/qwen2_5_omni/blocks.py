"""One prompt batch from equal-shaped blocks: how each process's share of a batch becomes part of a global batch.

In a multi-process run every process prepares only its own rows of the global prompt batch (its videos decoded,
its patches cut, its audio chunked). Those per-process :class:`ModelInputs` differ in shape (token length, number
of patches, audio chunks), but a global array is made of equal blocks, one per process, laid end to end
(``jax.make_array_from_process_local_data``). :func:`pad_block` pads one share to sizes every block agrees on
(:func:`common_sizes` of every block's :func:`block_sizes`) and moves its indices to where the block sits in the
global batch, so that the blocks laid end to end (:func:`concat_blocks` on one host; one global array per leaf
across processes) are one valid ``ModelInputs`` whose real rows give the same logits as the rows prepared in a
single batch:

- token rows are left-padded to the common length (padding: ``pad_id``, attention mask 0, position 1, as the
  processor pads), so the global batch equals the one a single process would have collated;
- encoder inputs get inert filler: zero patches laid out as frames of one merge unit each (their own attention
  segments), zero audio chunks with an empty mask, and filler audio frames in a segment of their own. The filler
  features are written at a placeholder position past the end of the batch, which :meth:`Thinker.embed` drops
  (``mode="drop"``);
- placeholder positions (flat indices into ``rows x length``), the vision window order and the attention segment
  ids are offset by the block's place, so segment ids stay distinct and non-decreasing over the whole batch (the
  banded vision attention relies on it).

Which axis of each leaf the blocks are laid along: :func:`block_axis` (``position_ids`` [3, B, T]: 1; every other
leaf: 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from omnir1_jax.models.qwen2_5_omni.audio import AudioLayout
from omnir1_jax.models.qwen2_5_omni.config import Qwen2_5OmniConfig
from omnir1_jax.models.qwen2_5_omni.thinker import InputError, ModelInputs
from omnir1_jax.models.qwen2_5_omni.vision import VisionLayout, vision_layout

#: the keys of :func:`block_sizes`, in a fixed order (the order processes exchange them in)
SIZE_KEYS = (
    "rows",
    "length",
    "repeats",
    "image_patches",
    "image_max_full",
    "image_max_window",
    "video_patches",
    "video_max_full",
    "video_max_window",
    "audio_chunks",
    "audio_chunk_len",
    "audio_frames",
    "audio_pooled",
)
ABSENT = -1  # a modality the inputs do not have


def block_sizes(inputs: ModelInputs) -> dict[str, int]:
    """The shape facts of one block that every block must agree on (``ABSENT`` for a missing modality)."""
    b, t = np.shape(inputs.input_ids)
    s = dict.fromkeys(SIZE_KEYS, ABSENT)
    s.update(rows=int(b), length=int(t), repeats=int(inputs.num_repeats))
    for kind, px, lay in (
        ("image", inputs.pixel_values, inputs.image_layout),
        ("video", inputs.pixel_values_videos, inputs.video_layout),
    ):
        if lay is not None:
            s.update(
                {
                    f"{kind}_patches": int(np.shape(px)[0]),
                    f"{kind}_max_full": int(lay.max_full),
                    f"{kind}_max_window": int(lay.max_window),
                }
            )
    a = inputs.audio_layout
    if a is not None:
        c, length = np.shape(a.chunks)[:2]
        s.update(
            audio_chunks=int(c),
            audio_chunk_len=int(length),
            audio_frames=int(np.shape(a.valid_index)[0]),
            audio_pooled=int(np.shape(a.pool_index)[0]),
        )
    return s


def common_sizes(sizes: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """The sizes every block is padded to: the largest of each (rows and repeats must already be equal, and a
    modality present in one block must be present in all)."""
    if not sizes:
        raise InputError("no blocks to combine")
    out = {}
    for k in SIZE_KEYS:
        vals = [int(s[k]) for s in sizes]
        present = [v != ABSENT for v in vals]
        if any(present) and not all(present):
            which = [i for i, p in enumerate(present) if not p]
            raise InputError(
                f"{k.split('_')[0]} inputs are missing from block(s) {which} but present in others: "
                "every process's share of a batch must have the same modalities"
            )
        if k in ("rows", "repeats") and len(set(vals)) > 1:
            raise InputError(
                f"the blocks have different {k} {vals}: every process must hold the same number of "
                "prompt rows (data.batch_size a multiple of the processes)"
            )
        out[k] = max(vals)
    return out


def block_axis(path: str) -> int:
    """The axis of the leaf at ``path`` (a ``jax.tree_util.keystr``) along which blocks are laid end to end."""
    return 1 if path.endswith("position_ids") else 0


def _positions(f, *, t: int, rows: int, length: int, row0: int, total: int, count: int) -> np.ndarray:
    """Flat placeholder indices of a block of ``rows`` x ``t`` moved into the global ``total_rows x length``
    batch at row ``row0`` (left-padded by ``length - t``), padded to ``count`` entries that point past the end."""
    f = np.asarray(f, np.int64)
    end = total * length
    moved = np.where(f < rows * t, (f // t + row0) * length + f % t + (length - t), end)
    if len(moved) > count:
        raise InputError(f"a block has {len(moved)} placeholder positions, more than the common {count}")
    return np.concatenate([moved, np.full(count - len(moved), end)]).astype(np.int32)


def _vision(cfg: Qwen2_5OmniConfig, px, lay: VisionLayout, sizes, kind: str, block: int):
    m = cfg.vision.spatial_merge_size
    unit = m * m
    p, big = int(np.shape(px)[0]), sizes[f"{kind}_patches"]
    u, units = p // unit, big // unit
    wi, ri, rot = np.asarray(lay.window_index), np.asarray(lay.reverse_index), np.asarray(lay.rot_pos)
    fs, ws = np.asarray(lay.full_segment), np.asarray(lay.window_segment)
    if big > p:  # filler: frames of one merge unit each, in segments after the block's own
        filler = vision_layout(cfg.vision, [[(big - p) // unit, m, m]])
        nf, nw = (int(fs.max()) + 1 if p else 0), (int(ws.max()) + 1 if p else 0)
        wi = np.concatenate([wi, np.asarray(filler.window_index) + u])
        ri = np.concatenate([ri, np.asarray(filler.reverse_index) + u])
        rot = np.concatenate([rot.reshape(-1, 2), np.asarray(filler.rot_pos)])
        fs = np.concatenate([fs, np.asarray(filler.full_segment) + nf])
        ws = np.concatenate([ws, np.asarray(filler.window_segment) + nw])
    pixels = np.zeros((big, np.shape(px)[1]), np.asarray(px).dtype)
    pixels[:p] = np.asarray(px)
    # segment ids are below the patch count, so block * patches keeps every block's ids apart and increasing
    layout = VisionLayout(
        window_index=(wi + block * units).astype(np.int32),
        reverse_index=(ri + block * units).astype(np.int32),
        rot_pos=rot.astype(np.int32),
        full_segment=(fs + block * big).astype(np.int32),
        window_segment=(ws + block * big).astype(np.int32),
        max_full=sizes[f"{kind}_max_full"],
        max_window=sizes[f"{kind}_max_window"],
    )
    return pixels, layout, units


def _audio(lay: AudioLayout, sizes, block: int):
    chunks, cmask = np.asarray(lay.chunks), np.asarray(lay.chunk_mask)
    c, length, mel = chunks.shape
    big_c, big_l = sizes["audio_chunks"], sizes["audio_chunk_len"]
    l2, big_l2 = (length - 1) // 2 + 1, (big_l - 1) // 2 + 1
    out = np.zeros((big_c, big_l, mel), chunks.dtype)
    out[:c, :length] = chunks
    mask = np.zeros((big_c, big_l), bool)
    mask[:c, :length] = cmask
    vi, seg, pool = (np.asarray(a, np.int64) for a in (lay.valid_index, lay.segment, lay.pool_index))
    s, q = sizes["audio_frames"], sizes["audio_pooled"]
    vi = (vi // l2 + block * big_c) * big_l2 + vi % l2
    # filler frames read the block's first frame, in a segment of their own (id big_c of this block)
    vi = np.concatenate([vi, np.full(s - len(vi), block * big_c * big_l2)])
    seg = np.concatenate([seg + block * (big_c + 1), np.full(s - len(seg), block * (big_c + 1) + big_c)])
    pool = np.concatenate([pool + block * s, np.full(q - len(pool), block * s)])
    return AudioLayout(
        chunks=out,
        chunk_mask=mask,
        valid_index=vi.astype(np.int32),
        segment=seg.astype(np.int32),
        pool_index=pool.astype(np.int32),
    )


def pad_block(
    cfg: Qwen2_5OmniConfig,
    inputs: ModelInputs,
    sizes: Mapping[str, int],
    *,
    block: int,
    num_blocks: int,
    pad_id: int = 0,
) -> ModelInputs:
    """``inputs`` (one share, host arrays) padded to ``sizes`` (:func:`common_sizes`) and moved to place
    ``block`` of ``num_blocks`` equal blocks (host numpy arrays; see the module docstring).

    Raises:
      InputError: ``inputs`` does not fit ``sizes`` (more rows, tokens, patches or audio than the common sizes) or
        is not left-padded.
    """
    if not 0 <= block < num_blocks:
        raise InputError(f"block {block} is not in [0, {num_blocks})")
    own = block_sizes(inputs)
    for k in SIZE_KEYS:
        if (
            (own[k] == ABSENT) != (sizes[k] == ABSENT)
            or own[k] > sizes[k]
            or (k in ("rows", "repeats") and own[k] != sizes[k])
        ):
            raise InputError(f"block {block} has {k}={own[k]}, which does not fit the common {k}={sizes[k]}")
    ids, mask = np.asarray(inputs.input_ids), np.asarray(inputs.attention_mask)
    b, t = ids.shape
    if b and not np.all(mask[:, -1] == 1):
        raise InputError(f"block {block}: prompts must be left-padded (attention_mask[:, -1] == 1 for every row)")
    length, nr = sizes["length"], sizes["repeats"]
    shift, row0, total = length - t, block * b, num_blocks * b
    pos = dict(t=t, rows=b, length=length, row0=row0, total=total)
    out = dict(
        input_ids=np.pad(ids, ((0, 0), (shift, 0)), constant_values=pad_id).astype(ids.dtype),
        attention_mask=np.pad(mask, ((0, 0), (shift, 0))).astype(mask.dtype),
        position_ids=np.pad(np.asarray(inputs.position_ids), ((0, 0), (0, 0), (shift, 0)), constant_values=1),
        rope_deltas=np.asarray(inputs.rope_deltas),
    )
    if inputs.image_layout is not None:
        px, lay, units = _vision(cfg, inputs.pixel_values, inputs.image_layout, sizes, "image", block)
        out.update(
            pixel_values=px,
            image_layout=lay,
            image_positions=_positions(inputs.image_positions, count=units * nr, **pos),
        )
    if inputs.video_layout is not None:
        px, lay, units = _vision(cfg, inputs.pixel_values_videos, inputs.video_layout, sizes, "video", block)
        out.update(
            pixel_values_videos=px,
            video_layout=lay,
            video_positions=_positions(inputs.video_positions, count=units * nr, **pos),
        )
    if inputs.audio_layout is not None:
        out.update(
            audio_layout=_audio(inputs.audio_layout, sizes, block),
            audio_positions=_positions(inputs.audio_positions, count=sizes["audio_pooled"] * nr, **pos),
        )
    return ModelInputs(**out, num_repeats=inputs.num_repeats)


def concat_blocks(blocks: Sequence[ModelInputs]) -> ModelInputs:
    """The blocks of :func:`pad_block` (in block order) laid end to end on one host: the global batch."""
    first = blocks[0]
    leaves = [jax.tree_util.tree_flatten_with_path(b)[0] for b in blocks]
    treedef = jax.tree_util.tree_structure(first)
    if any(jax.tree_util.tree_structure(b) != treedef for b in blocks):
        raise InputError("the blocks differ in structure (modalities or static fields)")
    out = [
        np.concatenate([np.asarray(lv[i][1]) for lv in leaves], axis=block_axis(jax.tree_util.keystr(path)))
        for i, (path, _) in enumerate(leaves[0])
    ]
    return jax.tree_util.tree_unflatten(treedef, out)


def merge_rows(parts: Sequence[ModelInputs], *, pad_id: int = 0) -> ModelInputs:
    """Prepared prompt batches stacked row-wise into one batch, whatever modalities each has (e.g. Ref-AVS rows
    with an image and audio, VOS rows with a video): token rows left-padded to the longest, each modality's
    encoder inputs concatenated over the parts that have it, with its window order, segments and placeholder
    positions moved (host numpy arrays; no filler). The logits of every real token equal those of its own part."""
    if not parts:
        raise InputError("no prompt batches to merge")
    reps = {int(p.num_repeats) for p in parts}
    if len(reps) != 1:
        raise InputError(f"cannot merge prompt batches with different num_repeats {sorted(reps)}")
    length = max(int(np.shape(p.input_ids)[1]) for p in parts)
    total = sum(int(np.shape(p.input_ids)[0]) for p in parts)
    ids, mask, pos_ids, deltas = [], [], [], []
    moved: dict[str, list] = {"image": [], "video": [], "audio": []}
    row0 = 0
    for p in parts:
        b, t = np.shape(p.input_ids)
        shift = length - t
        ids.append(np.pad(np.asarray(p.input_ids), ((0, 0), (shift, 0)), constant_values=pad_id))
        mask.append(np.pad(np.asarray(p.attention_mask), ((0, 0), (shift, 0))))
        pos_ids.append(np.pad(np.asarray(p.position_ids), ((0, 0), (0, 0), (shift, 0)), constant_values=1))
        deltas.append(np.asarray(p.rope_deltas))
        for kind, f in (("image", p.image_positions), ("video", p.video_positions), ("audio", p.audio_positions)):
            if f is not None:
                moved[kind].append(
                    _positions(f, t=t, rows=b, length=length, row0=row0, total=total, count=int(np.shape(f)[0]))
                )
        row0 += b
    out = dict(
        input_ids=np.concatenate(ids),
        attention_mask=np.concatenate(mask),
        position_ids=np.concatenate(pos_ids, axis=1),
        rope_deltas=np.concatenate(deltas),
    )
    for kind, px_key in (("image", "pixel_values"), ("video", "pixel_values_videos")):
        have = [p for p in parts if getattr(p, f"{kind}_layout") is not None]
        if not have:
            continue
        layouts = [getattr(p, f"{kind}_layout") for p in have]
        pixels = [np.asarray(getattr(p, px_key)) for p in have]
        units = [len(np.asarray(lay.window_index)) for lay in layouts]
        u_off = np.concatenate([[0], np.cumsum(units)[:-1]]).astype(np.int64)
        cat = lambda name, offs: np.concatenate(
            [np.asarray(getattr(lay, name), np.int64) + o for lay, o in zip(layouts, offs)]
        ).astype(np.int32)
        nseg = lambda name: [
            int(np.asarray(getattr(lay, name)).max()) + 1 if len(np.asarray(getattr(lay, name))) else 0
            for lay in layouts
        ]
        f_off = np.concatenate([[0], np.cumsum(nseg("full_segment"))[:-1]])
        w_off = np.concatenate([[0], np.cumsum(nseg("window_segment"))[:-1]])
        out[px_key] = np.concatenate(pixels)
        out[f"{kind}_layout"] = VisionLayout(
            window_index=cat("window_index", u_off),
            reverse_index=cat("reverse_index", u_off),
            rot_pos=np.concatenate([np.asarray(lay.rot_pos) for lay in layouts]).astype(np.int32),
            full_segment=cat("full_segment", f_off),
            window_segment=cat("window_segment", w_off),
            max_full=max(int(lay.max_full) for lay in layouts),
            max_window=max(int(lay.max_window) for lay in layouts),
        )
        out[f"{kind}_positions"] = np.concatenate(moved[kind])
    have = [p.audio_layout for p in parts if p.audio_layout is not None]
    if have:
        big_l = max(int(np.shape(a.chunks)[1]) for a in have)
        big_l2 = (big_l - 1) // 2 + 1
        chunks, cmask, vi, seg, pool = [], [], [], [], []
        c_off = s_off = 0
        for a in have:
            c, length_a, mel = np.shape(a.chunks)
            l2 = (length_a - 1) // 2 + 1
            chunks.append(np.pad(np.asarray(a.chunks), ((0, 0), (0, big_l - length_a), (0, 0))))
            cmask.append(np.pad(np.asarray(a.chunk_mask), ((0, 0), (0, big_l - length_a))))
            v = np.asarray(a.valid_index, np.int64)
            vi.append((v // l2 + c_off) * big_l2 + v % l2)
            seg.append(np.asarray(a.segment, np.int64) + c_off)
            pool.append(np.asarray(a.pool_index, np.int64) + s_off)
            c_off, s_off = c_off + c, s_off + len(v)
        out["audio_layout"] = AudioLayout(
            chunks=np.concatenate(chunks),
            chunk_mask=np.concatenate(cmask),
            valid_index=np.concatenate(vi).astype(np.int32),
            segment=np.concatenate(seg).astype(np.int32),
            pool_index=np.concatenate(pool).astype(np.int32),
        )
        out["audio_positions"] = np.concatenate(moved["audio"])
    return ModelInputs(**out, num_repeats=reps.pop())
