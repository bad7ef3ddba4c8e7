"""SAM2 memory attention for a group pass, rewritten so that per-object work is as small as the maths allows.

``sam2.modeling.memory_attention.MemoryAttention`` recomputes, at every frame and for every object, the key and
value projections of all memory tokens (up to ``num_maskmem`` frames of ``h*w`` tokens, which are the same
tensors frame after frame) and multiplies the attention weights by 256-wide values. This module computes the
same function with three exact rewrites (equal up to float rounding):

1. **Key cache.** A memory frame's keys are ``rope(W_k (m + p + tpos[t_pos]) + b_k)`` where ``m`` are its
   memory features, ``p`` their spatial position encoding and ``tpos[t_pos]`` the temporal encoding of its slot
   (which changes from frame to frame). Rotary encoding and ``W_k`` are linear, so this is
   ``rope(W_k (m + p)) + rope(W_k tpos[t_pos] + b_k)``: the first term is computed once per memory frame and
   layer (:meth:`GroupMemoryAttention.entry_keys`), the second once per layer and slot.
2. **Narrow values** (off CUDA). Values are ``W_v m + b_v`` with ``m`` only ``mem_dim`` (64) wide and
   attention weights summing to one, so ``A (M W_v^T + b_v) = (A M) W_v^T + b_v``: the weights multiply the
   64-wide memory, not the 256-wide values (4x less work for the largest product), and no value projection of
   the memory is made. On CUDA the fused attention kernel runs on projected values instead.
3. **Shared first self-attention.** The first layer's self-attention sees only the frame's image features,
   which are the same for every object: it runs once per frame and is broadcast to the objects.

Object-pointer tokens (not rotary-encoded) are projected as usual. Anything this rewrite does not cover (more
than one head, other position-encoding flags, non-rotary attention) is reported by :func:`supports`, and the
segmenter then calls sam2's module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def supports(memory_attention) -> bool:
    """Whether ``memory_attention`` (sam2's ``MemoryAttention``) has the layout this rewrite assumes: every
    SAM2 / SAM2.1 config does (one head, rotary self- and cross-attention, keys with position encoding,
    queries without, position encoding added at the input)."""
    from sam2.modeling.sam.transformer import RoPEAttention

    for layer in memory_attention.layers:
        sa, ca = layer.self_attn, layer.cross_attn_image
        if not (isinstance(sa, RoPEAttention) and isinstance(ca, RoPEAttention)):
            return False
        if sa.num_heads != 1 or ca.num_heads != 1 or not ca.rope_k_repeat:
            return False
        if layer.pos_enc_at_attn or layer.pos_enc_at_cross_attn_queries or not layer.pos_enc_at_cross_attn_keys:
            return False
        if layer.activation_str != "relu":
            return False
    return bool(memory_attention.batch_first)


def _rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotary encoding of ``x`` [..., S, D] with complex ``freqs`` [S, D/2] (sam2's ``apply_rotary_enc``)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs).flatten(-2).type_as(x)


class GroupMemoryAttention:
    """The rewrite above, bound to one SAM2 model (see the module docstring)."""

    def __init__(self, model, fused: bool | None = None):
        self.model = model
        self.fused = fused  # None: the fused attention kernel on CUDA, two matmuls elsewhere
        self.attn = model.memory_attention
        self.layers = list(self.attn.layers)
        self._freqs: dict[tuple[int, str], torch.Tensor] = {}
        self._slot_keys: dict[tuple[int, str, torch.dtype], list[torch.Tensor]] = {}

    def _freqs_for(self, tokens: int, device: torch.device) -> torch.Tensor:
        key = (tokens, str(device))
        if key not in self._freqs:
            side = math.sqrt(tokens)
            ca = self.layers[0].cross_attn_image
            self._freqs[key] = ca.compute_cis(end_x=side, end_y=side).to(device)
        return self._freqs[key]

    def _slot_table(self, tokens: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """Per layer: [num_maskmem, S, D] = rope(W_k tpos[slot] + b_k) for every memory slot."""
        key = (tokens, str(device), dtype)
        if key not in self._slot_keys:
            # slot t_pos uses maskmem_tpos_enc[num_maskmem - t_pos - 1]
            tpos = self.model.maskmem_tpos_enc.reshape(self.model.num_maskmem, -1).flip(0).to(device)
            freqs = self._freqs_for(tokens, device)
            table = []
            for layer in self.layers:
                k = F.linear(tpos, layer.cross_attn_image.k_proj.weight, layer.cross_attn_image.k_proj.bias)
                table.append(_rope(k[:, None, :].expand(-1, tokens, -1), freqs).to(dtype))
            self._slot_keys[key] = table
        return self._slot_keys[key]

    def entry_keys(self, features: torch.Tensor, pos_enc: torch.Tensor) -> list[torch.Tensor]:
        """Cached keys of memory frames: ``features`` and ``pos_enc`` [B, mem_dim, h, w] (the stored
        ``maskmem_features`` and the last ``maskmem_pos_enc``) -> per layer [B, h*w, D] = rope(W_k (m + p))."""
        x = (features + pos_enc).flatten(2).transpose(1, 2)  # [B, S, mem_dim]
        freqs = self._freqs_for(x.shape[1], x.device)
        return [_rope(F.linear(x, layer.cross_attn_image.k_proj.weight), freqs) for layer in self.layers]

    def __call__(self, curr: torch.Tensor, curr_pos: torch.Tensor, members: list[tuple]) -> torch.Tensor:
        """Memory-conditioned features of B objects on one frame.

        ``curr`` / ``curr_pos``: the frame's image features and position encoding [S, 1, D] (shared by the
        objects). ``members[j] = (slots, keys, tokens, ptr, ptr_pos)`` for object j: the memory slot
        (``t_pos``) of each of its memory frames, their :meth:`entry_keys` (per frame, per layer [1, S, D]),
        their memory features [1, S, mem_dim], and its object-pointer tokens and their encoding
        [1, P, mem_dim] (or None). Objects may have different numbers of memory frames and pointers: shorter
        memories are padded and the padding masked out of the softmax. Returns [S, B, D] like
        ``MemoryAttention.forward``.
        """
        b, s = len(members), curr.shape[0]
        x = curr.transpose(0, 1)  # [1, S, D]
        if self.attn.pos_enc_at_input:
            x = x + 0.1 * curr_pos.transpose(0, 1)
        dtype = members[0][1][0][0].dtype
        table = self._slot_table(s, x.device, dtype)
        values = [torch.cat(tok + ([ptr] if ptr is not None else []), 1) for _, _, tok, ptr, _ in members]
        lengths = [v.shape[1] for v in values]
        length = max(lengths)
        values = torch.cat([F.pad(v, (0, 0, 0, length - v.shape[1])) for v in values])  # [B, L, mem_dim]
        mask = None
        if min(lengths) < length:
            mask = torch.arange(length, device=x.device)[None, :] < torch.tensor(lengths, device=x.device)[:, None]
            mask = mask[:, None, :]  # [B, 1, L]
        freqs = self._freqs_for(s, x.device)
        for i, layer in enumerate(self.layers):
            x = layer._forward_sa(x, None)
            if i == 0:
                x = x.expand(b, -1, -1)
            ca = layer.cross_attn_image
            q = _rope(ca.q_proj(layer.norm2(x)), freqs)  # [B, S, D]
            keys = []
            for slots, entry_keys, _, ptr, ptr_pos in members:
                k = [entry_keys[e][i] + table[i][slot] for e, slot in enumerate(slots)]
                if ptr is not None:
                    k.append(F.linear(ptr + ptr_pos, ca.k_proj.weight, ca.k_proj.bias).to(dtype))
                keys.append(F.pad(torch.cat(k, 1), (0, 0, 0, length - sum(t.shape[1] for t in k))))
            out = _attention(q, torch.cat(keys), values.to(q.dtype), mask, ca.v_proj, self.fused)  # [B, S, D]
            x = x + ca.out_proj(out)
            x = x + layer.linear2(torch.relu(layer.linear1(layer.norm3(x))))
        return self.attn.norm(x).transpose(0, 1)


def _attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    v_proj: torch.nn.Linear,
    fused: bool | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v_proj(v) with ``mask`` [B, 1, L] (True = attend).

    Unfused (the default off CUDA): two matrix products with the weights applied to the narrow ``v`` before the
    projection (the weights sum to one, so the bias passes through). Fused (the default on CUDA): torch's
    fused kernel on projected values, which never holds the [B, S, L] score matrix (at 1024 px a memory has
    ~29k tokens)."""
    if fused if fused is not None else q.device.type == "cuda":
        m = None if mask is None else mask[:, None]
        return F.scaled_dot_product_attention(q[:, None], k[:, None], v_proj(v)[:, None], attn_mask=m)[:, 0]
    scores = torch.matmul(q, k.transpose(1, 2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return v_proj(torch.matmul(torch.softmax(scores, dim=-1), v))
