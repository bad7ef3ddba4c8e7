"""SAM2 segmenter for one GRPO group: ONE video state over the clip, every detection its own object.

What a group pass does (Omni-R1 appendix B, with the sweep rule of this project):

1. The image encoder runs once per clip frame (in batches of ``encode_batch`` frames) and the features are
   kept for the whole pass (the stock predictor keeps one frame and recomputes per sweep and per state).
2. Each detection ``(rollout, frame, pred_obj_idx, box)`` gets its own object id (:mod:`sam2_bridge.server.objects`)
   and a box prompt on its frame; that frame is the object's only conditioning frame.
3. Two full sweeps: forward over frames ``0 .. T-1`` and backward over ``T-1 .. 0``, as
   ``propagate_in_video(start_frame_idx=0)`` and ``propagate_in_video(start_frame_idx=T-1, reverse=True)``
   of ``sam2.SAM2VideoPredictor`` would run them on a state holding all objects. Because every sweep starts
   at the clip's ends, an object's memory bank, object pointers and outputs depend only on its own prompt,
   never on the other rollouts' prompts (the stock default starts at the group's earliest prompt, which
   would make one rollout's masks depend on the others').
4. Union rule: an object's mask on frame t is ``logit > 0`` after resizing its low-res logits to the frame
   (as SAM2 outputs them); the rollout's mask on frame t is the OR over its objects in the forward sweep,
   OR-ed with the same union from the backward sweep.

Batching: objects are independent slices, so on each frame the objects run memory attention, the mask
decoder and the memory encoder in batches of up to ``object_batch``; the per-object values are those of
separate batch-1 calls up to float rounding (``batch_objects=False`` runs them one at a time, as the stock
predictor does). Memory attention is :mod:`sam2_bridge.server.memattn`'s rewrite (cached keys, 64-wide values,
shared first self-attention; memories of different lengths padded and masked), or with
``fast_memory_attention=False`` sam2's own module on batches of equal memory length. Detections with the
same frame and box are tracked once (``share_identical_prompts``): by 3., their masks are the same.

Off CUDA, memory features stay in the model dtype (sam2 1.1.0 casts them to bfloat16, which breaks
float32 CPU runs with "mat1 and mat2 must have the same dtype"); ``round_memory_to_bf16`` reproduces the
stock rounding (for parity with :class:`sam2_bridge.server.sam2_reference.StockPredictor`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sam2_bridge.server.memattn import GroupMemoryAttention, supports
from sam2_bridge.server.objects import ObjectTable

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Sam2Config:
    """How to build SAM2 (``sam2.build_sam.build_sam2_video_predictor``) and run group passes."""

    config: str = "configs/sam2.1/sam2.1_hiera_l.yaml"  # packaged hydra config
    checkpoint: str | None = None  # local .pt; None = random weights (tests), seeded by ``seed``
    image_size: int | None = None  # override of the config's image size (multiple of 16); None = config
    device: str = "cpu"
    dtype: str = "float32"  # "float32" | "bfloat16" (autocast, CUDA only)
    seed: int = 0
    batch_objects: bool = True
    object_batch: int | None = None  # most objects per batched call; None: 8 on CPU, 64 on CUDA
    share_identical_prompts: bool = True  # detections with the same frame and box are tracked once
    fast_memory_attention: bool = True  # key cache + narrow values (sam2_bridge.server.memattn); False = sam2's module
    encode_batch: int = 4  # frames per image-encoder call
    round_memory_to_bf16: bool | None = None  # None: True on CUDA (stock behaviour), False elsewhere

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"Sam2Config.dtype = {self.dtype!r}, expected 'float32' or 'bfloat16'")
        if self.dtype == "bfloat16" and not self.device.startswith("cuda"):
            raise ValueError("Sam2Config.dtype = 'bfloat16' needs a CUDA device")
        if self.image_size is not None and (self.image_size <= 0 or self.image_size % 16):
            raise ValueError(f"Sam2Config.image_size = {self.image_size} is not a positive multiple of 16")
        if self.checkpoint is not None and not os.path.isfile(self.checkpoint):
            raise FileNotFoundError(f"Sam2Config.checkpoint: no file {self.checkpoint}")
        if self.object_batch is not None and self.object_batch < 1:
            raise ValueError(f"Sam2Config.object_batch = {self.object_batch} < 1")
        if self.encode_batch < 1:
            raise ValueError(f"Sam2Config.encode_batch = {self.encode_batch} < 1")

    def hydra_overrides(self) -> list[str]:
        if self.image_size is None:
            return []
        side = self.image_size // 16
        return [
            f"++model.image_size={self.image_size}",
            f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
            f"++model.memory_attention.layer.cross_attention.feat_sizes=[{side},{side}]",
        ]


def build_predictor(cfg: Sam2Config):
    """A ``SAM2VideoPredictor`` from a packaged config and a local checkpoint (random weights if none)."""
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(cfg.seed)
    return build_sam2_video_predictor(
        cfg.config, ckpt_path=cfg.checkpoint, device=cfg.device, hydra_overrides_extra=cfg.hydra_overrides()
    )


def preprocess_frames(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [T, 3, S, S] normalised exactly like ``sam2.utils.misc``'s JPEG loader."""
    from PIL import Image

    out = torch.zeros(len(frames), 3, image_size, image_size, dtype=torch.float32)
    for i, frame in enumerate(frames):
        img = np.asarray(Image.fromarray(frame).resize((image_size, image_size))) / 255.0
        out[i] = torch.from_numpy(img).permute(2, 0, 1)
    out -= torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
    out /= torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
    return out


@dataclasses.dataclass
class GroupMasks:
    """Result of one group pass."""

    masks: np.ndarray  # bool [R, T, H, W]
    table: ObjectTable
    logits_fwd: torch.Tensor | None  # float32 [D, T, 1, h, w] low-res logits, forward sweep
    logits_bwd: torch.Tensor | None  # same, backward sweep
    timings: dict[str, float]

    def video_logits(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward / backward logits float32 [D, T, H, W] resized to the frames as SAM2 outputs them."""
        return tuple(
            torch.stack(
                [F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)[:, 0] for x in logits]
            )
            for logits in (self.logits_fwd, self.logits_bwd)
        )


class GroupSegmenter:
    """Segments all detections of one GRPO group in one pass (see the module docstring)."""

    def __init__(self, cfg: Sam2Config, predictor: Any = None):
        self.cfg = cfg
        self.model = predictor if predictor is not None else build_predictor(cfg)
        self.device = torch.device(cfg.device)
        round_bf16 = cfg.round_memory_to_bf16
        self.round_memory_to_bf16 = self.device.type == "cuda" if round_bf16 is None else round_bf16
        fast = cfg.fast_memory_attention and supports(self.model.memory_attention)
        self.memattn = GroupMemoryAttention(self.model) if fast else None

    @property
    def image_size(self) -> int:
        return int(self.model.image_size)

    def _autocast(self):
        if self.cfg.dtype == "bfloat16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    @torch.inference_mode()
    def segment(
        self, frames: np.ndarray, num_rollouts: int, det_rollout, det_frame, det_boxes, keep_logits: bool = False
    ) -> GroupMasks:
        """Masks bool [R, T, H, W] for detections (rollout, frame, box in original pixels) on ``frames``."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        table = ObjectTable.from_detections(num_rollouts, det_rollout, det_frame, det_boxes)
        t_count, height, width = frames.shape[:3]
        if len(table) and max(t[1] for t in table.tuples) >= t_count:
            raise ValueError(f"a detection frame is outside the {t_count}-frame clip")
        timings: dict[str, float] = {}
        if len(table) == 0:
            return GroupMasks(np.zeros((num_rollouts, t_count, height, width), bool), table, None, None, timings)
        with self._autocast():
            t0 = time.perf_counter()
            feats = self._encode(frames)
            t1 = time.perf_counter()
            canon = self._canonical(table)
            cond = self._prompt(feats, table, height, width, set(canon))
            t2 = time.perf_counter()
            fwd = self._sweep(feats, table, cond, reverse=False)
            bwd = self._sweep(feats, table, cond, reverse=True)
            t3 = time.perf_counter()
        logits_fwd = torch.stack(
            [torch.stack([fwd[t][canon[d]][0] for t in range(t_count)]) for d in range(len(table))]
        ).float()
        logits_bwd = torch.stack(
            [torch.stack([bwd[t][canon[d]][0] for t in range(t_count)]) for d in range(len(table))]
        ).float()
        masks = self._union_masks(table, logits_fwd, logits_bwd, height, width)
        t4 = time.perf_counter()
        timings.update(
            objects_tracked=float(len(set(canon))),
            encode_s=t1 - t0,
            prompt_s=t2 - t1,
            propagate_s=t3 - t2,
            masks_s=t4 - t3,
        )
        return GroupMasks(
            masks, table, logits_fwd if keep_logits else None, logits_bwd if keep_logits else None, timings
        )

    # ------------------------------------------------------------------------------------------ steps

    def _canonical(self, table: ObjectTable) -> list[int]:
        """``canon[d]``: the object whose masks detection d gets. With ``share_identical_prompts``, the first
        detection with the same frame and box: an object's masks depend only on its own prompt (the full-sweep
        rule), so tracking such detections once gives every one of them exactly the masks it would get alone."""
        if not self.cfg.share_identical_prompts:
            return list(range(len(table)))
        first: dict[tuple, int] = {}
        return [first.setdefault((f, box), d) for d, (_r, f, _k, box) in table]

    def _union_masks(
        self, table: ObjectTable, logits_fwd: torch.Tensor, logits_bwd: torch.Tensor, height: int, width: int
    ) -> np.ndarray:
        """bool [R, T, H, W]: per rollout and frame, OR over its objects and both sweeps of (logit > 0) after
        resizing each object's low-res logits to the frame (the union is built per rollout, so memory stays
        O(R T H W) however many objects there are)."""
        t_count = logits_fwd.shape[1]
        out = np.zeros((table.num_rollouts, t_count, height, width), bool)
        rollout_of = table.rollout_of()
        for r in np.unique(rollout_of):
            objs = torch.as_tensor(np.flatnonzero(rollout_of == r), device=logits_fwd.device)
            acc = torch.zeros(t_count, height, width, dtype=torch.bool, device=logits_fwd.device)
            n = len(objs)
            step = max(1, 64 // n)  # frames per interpolation call
            for logits in (logits_fwd, logits_bwd):
                per_frame = logits.index_select(0, objs).transpose(0, 1)  # [T, n, 1, h, w]
                for t0 in range(0, t_count, step):
                    chunk = per_frame[t0 : t0 + step].reshape(-1, 1, *logits.shape[-2:])
                    big = F.interpolate(chunk, size=(height, width), mode="bilinear", align_corners=False) > 0
                    acc[t0 : t0 + step] |= big.view(-1, n, height, width).any(1)
            out[r] = acc.cpu().numpy()
        return out

    def _encode(self, frames: np.ndarray) -> list[dict[str, list[torch.Tensor]]]:
        images = preprocess_frames(frames, self.image_size).to(self.device)
        feats = []
        for start in range(0, len(images), self.cfg.encode_batch):
            out = self.model.forward_image(images[start : start + self.cfg.encode_batch])
            for i in range(out["backbone_fpn"][0].shape[0]):
                feats.append(
                    {
                        "backbone_fpn": [x[i : i + 1] for x in out["backbone_fpn"]],
                        "vision_pos_enc": [x[i : i + 1] for x in out["vision_pos_enc"]],
                    }
                )
        return feats

    def _frame_features(self, feat: dict[str, list[torch.Tensor]], batch: int):
        expanded = {
            "backbone_fpn": [x.expand(batch, -1, -1, -1) for x in feat["backbone_fpn"]],
            "vision_pos_enc": [x.expand(batch, -1, -1, -1) for x in feat["vision_pos_enc"]],
        }
        _, vision_feats, vision_pos, feat_sizes = self.model._prepare_backbone_features(expanded)
        return vision_feats, vision_pos, feat_sizes

    def _store_memory(self, feats: torch.Tensor) -> torch.Tensor:
        if self.round_memory_to_bf16:
            rounded = feats.to(torch.bfloat16)
            return rounded if self.device.type == "cuda" else rounded.to(feats.dtype)
        return feats

    def _memory_entries(self, mem: torch.Tensor, mem_pos: list[torch.Tensor]):
        """Per-object memory entry (stored features, position encodings, and the cached keys of the fast
        memory attention) of a batch of new memories."""
        stored = self._store_memory(mem)
        keys = self.memattn.entry_keys(stored, mem_pos[-1]) if self.memattn is not None else None
        tokens = stored.flatten(2).transpose(1, 2)  # [B, h*w, mem_dim]

        def entry(i: int) -> dict[str, Any]:
            out = {"maskmem_features": stored[i : i + 1], "maskmem_pos_enc": [x[i : i + 1] for x in mem_pos]}
            if keys is not None:
                out["keys"] = [k[i : i + 1] for k in keys]
                out["tokens"] = tokens[i : i + 1]
            return out

        return entry

    def _fill_holes(self, masks: torch.Tensor) -> torch.Tensor:
        if self.model.fill_hole_area > 0:
            from sam2.utils.misc import fill_holes_in_mask_scores

            return fill_holes_in_mask_scores(masks, self.model.fill_hole_area)
        return masks

    def _prompt(
        self, feats, table: ObjectTable, height: int, width: int, active: set[int]
    ) -> dict[int, dict[str, Any]]:
        """Box prompt on the frame of each object in ``active``: the conditioning output (mask logits,
        pointer, memory)."""
        m = self.model
        by_frame: dict[int, list[int]] = {}
        for obj_id, (_r, f, _k, _box) in table:
            if obj_id in active:
                by_frame.setdefault(f, []).append(obj_id)
        cond: dict[int, dict[str, Any]] = {}
        for f, objs in sorted(by_frame.items()):
            groups = [[o] for o in objs] if not self.cfg.batch_objects else [objs]
            for group in groups:
                points = torch.cat(
                    [torch.tensor(table.tuples[o][3], dtype=torch.float32).reshape(1, 2, 2) for o in group]
                )
                points = points / torch.tensor([width, height])
                points = (points * m.image_size).to(self.device)
                labels = torch.tensor([[2, 3]] * len(group), dtype=torch.int32, device=self.device)
                vision_feats, vision_pos, feat_sizes = self._frame_features(feats[f], len(group))
                out = m.track_step(
                    frame_idx=f,
                    is_init_cond_frame=True,
                    current_vision_feats=vision_feats,
                    current_vision_pos_embeds=vision_pos,
                    feat_sizes=feat_sizes,
                    point_inputs={"point_coords": points, "point_labels": labels},
                    mask_inputs=None,
                    output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
                    num_frames=len(feats),
                    track_in_reverse=False,
                    run_mem_encoder=False,
                )
                pred_masks = self._fill_holes(out["pred_masks"])
                high_res = F.interpolate(
                    pred_masks, size=(m.image_size, m.image_size), mode="bilinear", align_corners=False
                )
                mem, mem_pos = m._encode_new_memory(
                    vision_feats, feat_sizes, high_res, out["object_score_logits"], is_mask_from_pts=True
                )
                entries = self._memory_entries(mem, mem_pos)
                for i, o in enumerate(group):
                    cond[o] = {
                        "frame": f,
                        "pred_masks": pred_masks[i : i + 1],
                        **entries(i),
                        "obj_ptr": out["obj_ptr"][i : i + 1],
                        "object_score_logits": out["object_score_logits"][i : i + 1],
                    }
        return cond

    def _memory(self, t: int, cond: dict[str, Any], history: dict[int, dict[str, Any]], num_frames: int, reverse: bool):
        """One object's memory on frame ``t``: the memory frames as ``(t_pos, entry)`` pairs and its
        object-pointer tokens and their positions ([P, 1, C_mem] each, None when there are none).

        Mirrors ``SAM2Base._prepare_memory_conditioned_features`` (eval mode, stride 1) for an object whose
        only conditioning frame is ``cond["frame"]`` and whose tracked outputs in this sweep are ``history``.
        """
        m = self.model
        c = cond["frame"]
        entries = [(0, cond)]
        for t_pos in range(1, m.num_maskmem):
            t_rel = m.num_maskmem - t_pos
            prev = history.get(t + t_rel if reverse else t - t_rel)
            if prev is not None:
                entries.append((t_pos, prev))
        if m.use_obj_ptrs_in_encoder:
            max_ptrs = min(num_frames, m.max_obj_ptrs_in_encoder)
            sign = -1 if reverse else 1
            ptrs = []
            if not m.only_obj_ptrs_in_the_past_for_eval or (c >= t if reverse else c <= t):
                ptrs.append(((t - c) * sign if m.use_signed_tpos_enc_to_obj_ptrs else abs(t - c), cond["obj_ptr"]))
            for t_diff in range(1, max_ptrs):
                tt = t + t_diff if reverse else t - t_diff
                if tt < 0 or tt >= num_frames:
                    break
                if tt in history:
                    ptrs.append((t_diff, history[tt]["obj_ptr"]))
            if ptrs:
                return entries, *self._pointer_tokens(ptrs, max_ptrs)
        return entries, None, None

    def _stock_memory(self, entries, ptr, ptr_pos) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory tokens [L, 1, C_mem] and positions as ``MemoryAttention`` takes them."""
        m = self.model
        mem, mem_pos = [], []
        for t_pos, out in entries:
            mem.append(out["maskmem_features"].to(self.device).flatten(2).permute(2, 0, 1))
            enc = out["maskmem_pos_enc"][-1].to(self.device).flatten(2).permute(2, 0, 1)
            mem_pos.append(enc + m.maskmem_tpos_enc[m.num_maskmem - t_pos - 1])
        if ptr is not None:
            mem.append(ptr)
            mem_pos.append(ptr_pos)
        return torch.cat(mem, 0), torch.cat(mem_pos, 0)

    def _attend(self, vision_feats, vision_pos, members) -> torch.Tensor:
        """Memory attention of a batch of objects with the same memory layout on one frame: [S, B, C]."""
        if self.memattn is None:
            mems = [self._stock_memory(*x[1:]) for x in members]
            n_ptr = 0 if members[0][2] is None else members[0][2].shape[0]
            return self.model.memory_attention(
                curr=vision_feats[-1:],
                curr_pos=vision_pos[-1:],
                memory=torch.cat([x[0] for x in mems], 1),
                memory_pos=torch.cat([x[1] for x in mems], 1),
                num_obj_ptr_tokens=n_ptr,
            )
        parts = []
        for _, entries, ptr, ptr_pos in members:
            if ptr is not None:
                ptr, ptr_pos = ptr.transpose(0, 1), ptr_pos.transpose(0, 1)
            parts.append(
                (
                    [t_pos for t_pos, _ in entries],
                    [e["keys"] for _, e in entries],
                    [e["tokens"] for _, e in entries],
                    ptr,
                    ptr_pos,
                )
            )
        return self.memattn(vision_feats[-1][:, :1], vision_pos[-1][:, :1], parts)

    def _pointer_tokens(self, ptrs, max_ptrs: int):
        from sam2.modeling.sam2_utils import get_1d_sine_pe

        m = self.model
        c_dim = m.hidden_dim
        pos_list, ptr_list = zip(*ptrs)
        obj_ptrs = torch.stack(ptr_list, dim=0)  # [P, 1, C]
        if m.add_tpos_enc_to_obj_ptrs:
            tpos_dim = c_dim if m.proj_tpos_enc_in_obj_ptrs else m.mem_dim
            obj_pos = torch.tensor(pos_list).to(device=self.device)
            obj_pos = m.obj_ptr_tpos_proj(get_1d_sine_pe(obj_pos / (max_ptrs - 1), dim=tpos_dim))
            obj_pos = obj_pos.unsqueeze(1).expand(-1, 1, m.mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(pos_list), 1, m.mem_dim)
        if m.mem_dim < c_dim:
            obj_ptrs = obj_ptrs.reshape(-1, 1, c_dim // m.mem_dim, m.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(c_dim // m.mem_dim, dim=0)
        return obj_ptrs, obj_pos

    def _chunks(self, groups: dict[Any, list]):
        """Batches of at most ``object_batch`` objects, members of a group sorted by memory length (so that
        the padding of the fast memory attention stays small)."""
        size = self.cfg.object_batch or (64 if self.device.type == "cuda" else 8)
        for members in groups.values():
            members = sorted(members, key=lambda x: (len(x[1]), 0 if x[2] is None else x[2].shape[0]))
            for start in range(0, len(members), size):
                yield members[start : start + size]

    def _sweep(self, feats, table: ObjectTable, cond: dict[int, dict[str, Any]], reverse: bool):
        """One full sweep; returns ``logits[t][obj]`` (low-res, after hole filling) for every frame."""
        m = self.model
        num_frames = len(feats)
        history: dict[int, dict[int, dict[str, Any]]] = {o: {} for o in cond}
        logits: list[dict[int, torch.Tensor]] = []
        multimask = m._use_multimask(False, None)
        order = range(num_frames - 1, -1, -1) if reverse else range(num_frames)
        for t in order:
            frame_logits = {o: cond[o]["pred_masks"] for o in cond if cond[o]["frame"] == t}
            groups: dict[Any, list] = {}
            for o in cond:
                if cond[o]["frame"] == t:
                    continue
                entries, ptr, ptr_pos = self._memory(t, cond[o], history[o], num_frames, reverse)
                n_ptr = 0 if ptr is None else ptr.shape[0]
                if not self.cfg.batch_objects:
                    key = (o,)
                elif self.memattn is not None:  # pads and masks memories of different lengths
                    key = ()
                else:
                    key = (len(entries), n_ptr)
                groups.setdefault(key, []).append((o, entries, ptr, ptr_pos))
            for members in self._chunks(groups):
                objs = [x[0] for x in members]
                b = len(objs)
                vision_feats, vision_pos, feat_sizes = self._frame_features(feats[t], b)
                pix = self._attend(vision_feats, vision_pos, members)
                h, w = feat_sizes[-1]
                pix = pix.permute(1, 2, 0).view(b, m.hidden_dim, h, w)
                high_res_features = [
                    x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                    for x, s in zip(vision_feats[:-1], feat_sizes[:-1])
                ]
                (_, _, _, low_res, high_res, obj_ptr, score) = m._forward_sam_heads(
                    backbone_features=pix,
                    point_inputs=None,
                    mask_inputs=None,
                    high_res_features=high_res_features if len(vision_feats) > 1 else None,
                    multimask_output=multimask,
                )
                mem_feat, mem_pos = m._encode_new_memory(
                    vision_feats, feat_sizes, high_res, score, is_mask_from_pts=False
                )
                filled = self._fill_holes(low_res)
                entries = self._memory_entries(mem_feat, mem_pos)
                for i, o in enumerate(objs):
                    history[o][t] = {**entries(i), "obj_ptr": obj_ptr[i : i + 1]}
                    frame_logits[o] = filled[i : i + 1]
            logits.append(frame_logits)
            # frame t -/+ (num_maskmem - 1) leaves every later frame's memory window: drop its cached keys
            stale = t + (m.num_maskmem - 1) if reverse else t - (m.num_maskmem - 1)
            for o in history:
                entry = history[o].get(stale)
                if entry is not None:
                    entry.pop("keys", None)
                    entry.pop("tokens", None)
        return logits[::-1] if reverse else logits
