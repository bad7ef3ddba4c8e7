"""The group pass's memory attention (key cache, narrow values, shared first self-attention, padded
memories) against sam2's ``MemoryAttention`` on the same weights: float64, so that only the rewrite is tested,
not float32 rounding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sam2_bridge.server.memattn import GroupMemoryAttention, supports  # noqa: E402
from sam2_bridge.server.segmenter import Sam2Config, build_predictor  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def model():
    m = build_predictor(Sam2Config(config="configs/sam2.1/sam2.1_hiera_t.yaml", image_size=256, seed=3))
    return m.double()


def _stock(m, curr, curr_pos, slots, feats, pe, ptr, ptr_pos):
    """One object through sam2's module, memory laid out as ``SAM2Base._prepare_memory_conditioned_features``."""
    mem = [f.flatten(2).permute(2, 0, 1) for f in feats]
    pos = [pe.flatten(2).permute(2, 0, 1) + m.maskmem_tpos_enc[m.num_maskmem - s - 1] for s in slots]
    if ptr is not None:
        mem.append(ptr.transpose(0, 1))
        pos.append(ptr_pos.transpose(0, 1))
    return m.memory_attention(
        curr=[curr],
        curr_pos=[curr_pos],
        memory=torch.cat(mem),
        memory_pos=torch.cat(pos),
        num_obj_ptr_tokens=0 if ptr is None else ptr.shape[1],
    )


@torch.inference_mode()
@pytest.mark.parametrize("fused", [False, True], ids=["two-matmuls", "fused-kernel"])
def test_group_memory_attention_equals_sam2_module(model, fused):
    assert supports(model.memory_attention)
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    curr, curr_pos = rand(256, 1, 256), rand(256, 1, 256)
    pe = rand(1, 64, 16, 16, scale=0.3)
    # objects with different memory layouts: 7 frames + 16 pointers, 3 frames with gaps + 2 pointers,
    # the conditioning frame only and no pointer
    layouts = [(list(range(7)), 16), ([0, 2, 6], 2), ([0], 0)]
    attn = GroupMemoryAttention(model, fused=fused)  # fused: the CUDA path's kernel call, here on CPU
    members, expected = [], []
    for slots, n_ptr in layouts:
        feats = [rand(1, 64, 16, 16, scale=0.3) for _ in slots]
        ptr = rand(1, 4 * n_ptr, 64, scale=0.3) if n_ptr else None
        ptr_pos = rand(1, 4 * n_ptr, 64, scale=0.3) if n_ptr else None
        expected.append(_stock(model, curr, curr_pos, slots, feats, pe, ptr, ptr_pos))
        members.append(
            (
                slots,
                [attn.entry_keys(f, pe) for f in feats],
                [f.flatten(2).transpose(1, 2) for f in feats],
                ptr,
                ptr_pos,
            )
        )
    got = attn(curr, curr_pos, members)  # [S, B, D], all three in one padded batch
    assert got.shape == (256, 3, 256)
    for j, exp in enumerate(expected):
        err = (got[:, j : j + 1] - exp).abs().max().item()
        assert err <= 1e-8 * exp.abs().max().item(), (j, err)  # rotary encoding runs in float32 in both
    alone = attn(curr, curr_pos, members[1:2])  # a batch of one gives the same values as the padded batch
    np.testing.assert_allclose(alone[:, 0].numpy(), got[:, 1].numpy(), rtol=0, atol=1e-12)


def test_group_pass_with_full_memory_windows_equals_sam2_module_path(tmp_path):
    """A clip longer than the memory window (9 > 7 frames): every memory slot is used and cached keys are
    dropped as frames leave the window; logits and masks match the pass through sam2's module."""
    from sam2_bridge.server.segmenter import GroupSegmenter
    from sam2_bridge.wire.constants import BACKGROUND, PALETTE

    t, h, w = 9, 64, 80
    rng = np.random.default_rng(1)
    frames = np.clip(np.asarray(BACKGROUND) + rng.integers(-6, 7, (t, h, w, 3)), 0, 255).astype(np.uint8)
    for i in range(t):
        frames[i, 10:34, 4 + 5 * i : 28 + 5 * i] = PALETTE["red"]
        frames[i, 38:60, 50:74] = PALETTE["blue"]
    dets = (
        np.asarray([0, 0, 1], np.int32),
        np.asarray([0, 8, 4], np.int32),
        np.asarray([[4, 10, 28, 34], [44, 10, 68, 34], [50, 38, 74, 60]], np.float32),
    )
    cfg = Sam2Config(config="configs/sam2.1/sam2.1_hiera_t.yaml", image_size=256)
    model = build_predictor(cfg)
    fast = GroupSegmenter(cfg, model).segment(frames, 2, *dets, keep_logits=True)
    ref = GroupSegmenter(Sam2Config(config=cfg.config, image_size=256, fast_memory_attention=False), model).segment(
        frames, 2, *dets, keep_logits=True
    )
    assert GroupSegmenter(cfg, model).memattn is not None
    for a, b in ((fast.logits_fwd, ref.logits_fwd), (fast.logits_bwd, ref.logits_bwd)):
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, b.abs().max().item())
    assert fast.masks.any() and (fast.masks != ref.masks).mean() <= 1e-4  # a logit at 0 may round either way
