"""3-D (temporal, height, width) rotary position ids of a Thinker prompt, computed on the host in numpy.

Same result as transformers' ``get_rope_index`` for Qwen2.5-Omni:

- text tokens advance all three axes together by one;
- an image / video occupies ``t x (h/m) x (w/m)`` merged tokens; their temporal index is
  ``int(frame_group * second_per_grid * position_id_per_seconds)`` (images use 1 s), height and width are the
  merged-grid row / column; all offset by the running start index, and the next token starts at max + 1;
- audio tokens are plain consecutive positions (their count follows from the mel length);
- with ``use_audio_in_video``, ``<vision_bos><audio_bos>`` start at the same index, and video / audio tokens
  are interleaved in chunks of ``position_id_per_seconds * seconds_per_chunk`` temporal positions;
- without any image / video grid, positions are ``cumsum(attention_mask) - 1`` (padding gets 1).

Padding positions (attention_mask == 0) get 1 in the multimodal branch, as in transformers.
"""

from __future__ import annotations

import numpy as np

from omnir1_jax.models.qwen2_5_omni.config import Qwen2_5OmniConfig


class RopeIndexError(ValueError):
    """The prompt's placeholder tokens do not match the multimodal inputs."""


def audio_token_count(mel_lengths):
    """Number of audio tokens for mel lengths (conv stride 2, then pooling stride 2)."""
    mel_lengths = np.asarray(mel_lengths, np.int64)
    return ((mel_lengths - 1) // 2 + 1 - 2) // 2 + 1


def _chunked_index(values: np.ndarray, tokens_per_chunk: int, offset: int) -> list[tuple[int, int]]:
    """(start, end) slices of a monotone list where ``values - offset`` crosses successive chunk limits."""
    out, start, chunk = [], 0, 1
    for i in range(len(values)):
        if values[i] - offset >= chunk * tokens_per_chunk:
            out.append((start, i))
            start = i
            chunk += 1
    out.append((start, len(values)))
    return out


def _vision_positions(start: int, t_index: np.ndarray, gh: int, gw: int) -> np.ndarray:
    t = np.repeat(t_index, gh * gw)
    h = np.tile(np.repeat(np.arange(gh), gw), len(t_index))
    w = np.tile(np.arange(gw), len(t_index) * gh)
    return np.stack([t, h, w]).astype(np.int64) + start


def get_rope_index(
    cfg: Qwen2_5OmniConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    image_grid_thw: np.ndarray | None = None,
    video_grid_thw: np.ndarray | None = None,
    audio_seqlens: np.ndarray | None = None,
    second_per_grids: np.ndarray | None = None,
    use_audio_in_video: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``position_ids`` int64 [3, B, T] and ``rope_deltas`` int64 [B] (max position + 1 - length).

    Args:
      input_ids: [B, T] token ids. attention_mask: [B, T] (1 = real token), default all ones.
      image_grid_thw / video_grid_thw: [n, 3] patch grids (before merging), in prompt order over the batch.
      audio_seqlens: [n_audio] mel lengths (sum of ``feature_attention_mask`` rows).
      second_per_grids: [n_video] seconds per temporal patch group.
    """
    input_ids = np.asarray(input_ids)
    b, t = input_ids.shape
    mask = np.ones((b, t), bool) if attention_mask is None else np.asarray(attention_mask) == 1
    if image_grid_thw is None and video_grid_thw is None:
        pos = np.cumsum(mask.astype(np.int64), axis=-1) - 1
        pos = np.where(mask, pos, 1)
        pos = np.broadcast_to(pos[None], (3, b, t)).copy()
        deltas = pos.max(axis=(0, 2)) + 1 - mask.sum(-1)
        return pos, deltas.astype(np.int64)

    m = cfg.vision.spatial_merge_size
    pps = cfg.position_id_per_seconds
    per_chunk = int(pps * cfg.seconds_per_chunk)
    img = None if image_grid_thw is None else np.asarray(image_grid_thw, np.int64)
    vid = None if video_grid_thw is None else np.asarray(video_grid_thw, np.int64)
    aud = None if audio_seqlens is None else np.asarray(audio_seqlens, np.int64)
    spg = None if second_per_grids is None else np.asarray(second_per_grids, np.float64)

    position_ids = np.ones((3, b, t), np.int64)
    deltas = np.zeros((b,), np.int64)
    image_idx = video_idx = audio_idx = 0
    for i in range(b):
        ids = input_ids[i][mask[i]]
        tokens = ids.tolist()
        vs = np.flatnonzero(ids == cfg.vision_start_token_id)
        vision_next = ids[vs + 1] if len(vs) else np.zeros((0,), ids.dtype)
        n_audio = int(np.sum(ids == cfg.audio_start_token_id))
        n_image = int(np.sum(vision_next == cfg.image_token_id))
        n_video = int(np.sum(vision_next == (cfg.audio_start_token_id if use_audio_in_video else cfg.video_token_id)))
        parts: list[np.ndarray] = []

        def nxt() -> int:
            return int(parts[-1].max()) + 1 if parts else 0

        def text_run(n: int) -> None:
            if n:
                parts.append(np.broadcast_to(np.arange(n) + nxt(), (3, n)))

        def need(arr, idx, name):
            if arr is None or idx >= len(arr):
                raise RopeIndexError(f"row {i}: the prompt has more {name} placeholders than {name} inputs")
            return arr[idx]

        st = 0
        remain_img, remain_vid, remain_aud = n_image, n_video, n_audio
        total = n_image + n_audio if use_audio_in_video else n_image + n_video + n_audio
        end = len(tokens) + 1
        for _ in range(total):
            ed_img = tokens.index(cfg.image_token_id, st) if (cfg.image_token_id in tokens and remain_img > 0) else end
            ed_vid = tokens.index(cfg.video_token_id, st) if (cfg.video_token_id in tokens and remain_vid > 0) else end
            ed_aud = tokens.index(cfg.audio_token_id, st) if (cfg.audio_token_id in tokens and remain_aud > 0) else end
            min_ed = min(ed_img, ed_vid, ed_aud)
            if min_ed == end:
                raise RopeIndexError(f"row {i}: a modality start token has no placeholder tokens after it")
            if min_ed == ed_aud:
                text_len = min_ed - st - 1
                text_run(text_len)
                text_run(1)
                a_len = int(audio_token_count(need(aud, audio_idx, "audio")))
                text_run(a_len)
                text_run(1)
                st += text_len + 2 + a_len
                audio_idx += 1
                remain_aud -= 1
            elif min_ed == ed_img:
                text_len = min_ed - st - 1
                text_run(text_len)
                text_run(1)
                g = need(img, image_idx, "image")
                t_index = (np.arange(g[0]) * 1 * pps).astype(np.int64)
                parts.append(_vision_positions(nxt(), t_index, int(g[1]) // m, int(g[2]) // m))
                text_run(1)
                st += text_len + 2 + int(np.prod(g)) // (m * m)
                image_idx += 1
                remain_img -= 1
            elif not use_audio_in_video:
                text_len = min_ed - st - 1
                text_run(text_len)
                text_run(1)
                g = need(vid, video_idx, "video")
                sp = float(need(spg, video_idx, "video_second_per_grid"))
                t_index = (np.arange(g[0]).astype(np.float32) * np.float32(sp) * np.float32(pps)).astype(np.int64)
                parts.append(_vision_positions(nxt(), t_index, int(g[1]) // m, int(g[2]) // m))
                text_run(1)
                st += text_len + 2 + int(np.prod(g)) // (m * m)
                video_idx += 1
                remain_vid -= 1
            else:
                text_len = min_ed - st - 2
                text_run(text_len)
                s0 = nxt()
                parts.append(np.full((3, 1), s0))
                parts.append(np.full((3, 1), s0))
                s1 = nxt()
                a_len = int(audio_token_count(need(aud, audio_idx, "audio")))
                a_pos = np.broadcast_to(np.arange(a_len) + s1, (3, a_len))
                g = need(vid, video_idx, "video")
                sp = float(need(spg, video_idx, "video_second_per_grid"))
                t_index = (np.arange(g[0]).astype(np.float32) * np.float32(sp) * np.float32(pps)).astype(np.int64)
                v_pos = _vision_positions(s1, t_index, int(g[1]) // m, int(g[2]) // m)
                v_chunks = _chunked_index(v_pos[0], per_chunk, s1)
                a_chunks = _chunked_index(a_pos[0], per_chunk, s1)
                for j in range(max(len(v_chunks), len(a_chunks))):
                    if j < len(v_chunks):
                        parts.append(v_pos[:, v_chunks[j][0] : v_chunks[j][1]])
                    if j < len(a_chunks):
                        parts.append(a_pos[:, a_chunks[j][0] : a_chunks[j][1]])
                s2 = nxt()
                parts.append(np.full((3, 1), s2))
                parts.append(np.full((3, 1), s2))
                st += text_len + 4 + a_len + int(np.prod(g)) // (m * m)
                audio_idx += 1
                video_idx += 1
                remain_vid -= 1
                remain_aud -= 1
        if st < len(tokens):
            text_run(len(tokens) - st)
        pos = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), np.int64)
        if pos.shape[1] != len(tokens):
            raise RopeIndexError(
                f"row {i}: placeholder counts do not match the grids / audio lengths "
                f"({pos.shape[1]} positions for {len(tokens)} tokens)"
            )
        position_ids[:, i, mask[i]] = pos
        deltas[i] = int(pos.max()) + 1 - len(tokens)
    return position_ids, deltas
