"""Placeholder expansion and tokenisation with the same ``input_ids`` as ``Qwen2_5OmniProcessor``.

The chat text holds one ``<|VIDEO|>`` / ``<|IMAGE|>`` / ``<|AUDIO|>`` per media item. Each is replaced by as many
copies as the encoder emits: ``grid_t * grid_h * grid_w / 4`` for a video or image (2x2 merge), the audio
token count of its feature length for audio. With ``use_audio_in_video`` the video's ``<|VIDEO|>`` becomes
``<|audio_bos|>`` + video and audio tokens interleaved in 2 s chunks + ``<|audio_eos|>``: a video token's time
is ``t * video_second_per_grid * 25`` position ids, an audio token's time is its index (25 per second), and
chunk ``j`` (times in ``[50 j, 50 (j + 1))``) of the video precedes chunk ``j`` of the audio.

Splicing token-id runs between separately tokenised text pieces gives the same ids as tokenising the expanded
string because special tokens are split out before the byte-level BPE runs (checked in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POSITION_ID_PER_SECONDS = 25
SECONDS_PER_CHUNK = 2.0
MERGE = 4  # 2x2 spatial merge


def chunk_lengths(times: np.ndarray, tokens_per_chunk: int) -> list[int]:
    """Lengths of consecutive chunks of monotone ``times``: a new chunk starts at the first time reaching the
    next multiple of ``tokens_per_chunk`` (one boundary per such crossing, as the reference processor)."""
    lengths, start, chunk = [], 0, 1
    for i, v in enumerate(times):
        if v >= chunk * tokens_per_chunk:
            lengths.append(i - start)
            start, chunk = i, chunk + 1
    lengths.append(len(times) - start)
    return lengths


def interleave_video_audio(grid_thw: Sequence[int], second_per_grid: float, n_audio: int) -> list[tuple[str, int]]:
    """``[("video", n), ("audio", m), ...]`` runs of the use_audio_in_video layout (without the bos/eos)."""
    gt, gh, gw = (int(v) for v in grid_thw)
    per_t = (gh // 2) * (gw // 2)
    vt = np.repeat(np.arange(gt), per_t) * second_per_grid * POSITION_ID_PER_SECONDS
    at = np.arange(n_audio)
    tpc = int(POSITION_ID_PER_SECONDS * SECONDS_PER_CHUNK)
    v_chunks, a_chunks = chunk_lengths(vt, tpc), chunk_lengths(at, tpc)
    runs = []
    for j in range(max(len(v_chunks), len(a_chunks))):
        if j < len(v_chunks):
            runs.append(("video", v_chunks[j]))
        if j < len(a_chunks):
            runs.append(("audio", a_chunks[j]))
    return runs


def encode_with_placeholders(
    tokenizer,
    text: str,
    *,
    video_grid_thw: np.ndarray | None = None,
    video_second_per_grid: Sequence[float] | None = None,
    image_grid_thw: np.ndarray | None = None,
    audio_token_counts: Sequence[int] | None = None,
    use_audio_in_video: bool = False,
) -> np.ndarray:
    """Token ids ``[S]`` int32 of ``text`` with every media placeholder expanded.

    Args:
      tokenizer: a Qwen2.5-Omni tokenizer (has ``video_token``, ``image_token``, ``audio_token``,
        ``audio_bos_token``, ``audio_eos_token``).
      video_grid_thw, image_grid_thw: ``[N, 3]`` grids, one row per placeholder in order of appearance.
      video_second_per_grid: per video, seconds per temporal grid step (``2 / fps``).
      audio_token_counts: per audio, its token count (``audio.num_audio_tokens`` of its feature length).
      use_audio_in_video: audio ``i`` belongs to video ``i`` and is interleaved into it; ``text`` then holds no
        ``<|AUDIO|>``.
    """
    tok_of = {
        tokenizer.video_token: "video",
        tokenizer.image_token: "image",
        tokenizer.audio_token: "audio",
    }
    ids = {k: tokenizer.convert_tokens_to_ids(k) for k in tok_of}
    id_of = {v: ids[k] for k, v in tok_of.items()}
    bos = tokenizer.convert_tokens_to_ids(tokenizer.audio_bos_token)
    eos = tokenizer.convert_tokens_to_ids(tokenizer.audio_eos_token)
    counters = {"video": 0, "image": 0, "audio": 0}
    pieces: list[np.ndarray] = []
    rest = text
    while True:
        hits = [(rest.find(k), k) for k in tok_of if rest.find(k) >= 0]
        if not hits:
            break
        pos, key = min(hits)
        if pos:
            pieces.append(np.asarray(tokenizer(rest[:pos], add_special_tokens=False)["input_ids"], dtype=np.int32))
        kind = tok_of[key]
        i = counters[kind]
        counters[kind] += 1
        try:
            if kind == "video" and use_audio_in_video:
                runs = interleave_video_audio(
                    video_grid_thw[i], float(video_second_per_grid[i]), int(audio_token_counts[i])
                )
                seq = [bos] + [id_of[k] for k, n in runs for _ in range(n)] + [eos]
                pieces.append(np.asarray(seq, dtype=np.int32))
            elif kind in ("video", "image"):
                grid = video_grid_thw if kind == "video" else image_grid_thw
                pieces.append(np.full(int(np.prod(grid[i])) // MERGE, id_of[kind], dtype=np.int32))
            else:
                pieces.append(np.full(int(audio_token_counts[i]), id_of["audio"], dtype=np.int32))
        except (TypeError, IndexError):
            raise ValueError(f"text has more {kind} placeholders than {kind} inputs ({i + 1} > given)") from None
        rest = rest[pos + len(key) :]
    if rest:
        pieces.append(np.asarray(tokenizer(rest, add_special_tokens=False)["input_ids"], dtype=np.int32))
    return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)


def left_pad(seqs: Sequence[np.ndarray], pad_id: int, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad id sequences to ``length`` (default: the longest) -> (``input_ids [B, S]``, ``attention_mask [B,
    S]``)."""
    length = max(len(s) for s in seqs) if length is None else length
    if any(len(s) > length for s in seqs):
        raise ValueError(f"a sequence is longer than length={length}")
    ids = np.full((len(seqs), length), pad_id, dtype=np.int32)
    mask = np.zeros((len(seqs), length), dtype=np.int32)
    for b, s in enumerate(seqs):
        if len(s):
            ids[b, length - len(s) :] = s
            mask[b, length - len(s) :] = 1
    return ids, mask
