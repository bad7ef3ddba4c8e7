"""benchmarks/hlo_bytes.py counts the bytes of a hand-written optimised HLO module as computed by hand.

The module has a prefetched weight (copy-start into memory space 1), a matmul fusion reading the prefetched copy,
an in-place dynamic-update-slice fusion (a one-token cache write) and a plain one, a gather fusion (an embedding
lookup), a while loop (its body and condition counted
once), an asynchronous all-gather and fusion bodies that must not be walked; the optimised module's style of
operands (names without shapes) and the shaped style both occur.
"""

# ruff: noqa: E501  (HLO lines are long)
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks import hlo_bytes  # noqa: E402

MODULE = """HloModule jit_f, is_scheduled=true, entry_computation_layout={()->()}

%fused_dot (param_0: bf16[8,16], param_1: bf16[16,4]) -> bf16[8,4] {
  %param_0 = bf16[8,16]{1,0} parameter(0)
  %param_1 = bf16[16,4]{1,0:S(1)} parameter(1)
  ROOT %dot.1 = bf16[8,4]{1,0} dot(bf16[8,16]{1,0} %param_0, bf16[16,4]{1,0:S(1)} %param_1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_update (param_0.1: f32[4,100], param_1.1: f32[4,1], param_2: s32[]) -> f32[4,100] {
  %param_0.1 = f32[4,100]{1,0} parameter(0)
  %param_1.1 = f32[4,1]{1,0} parameter(1)
  %param_2 = s32[] parameter(2)
  %c0 = s32[] constant(0)
  ROOT %dus = f32[4,100]{1,0} dynamic-update-slice(f32[4,100]{1,0} %param_0.1, f32[4,1]{1,0} %param_1.1, s32[] %c0, s32[] %param_2)
}

%fused_gather (param_0.3: bf16[100,8], param_1.3: s32[2,1]) -> bf16[2,8] {
  %param_0.3 = bf16[100,8]{1,0} parameter(0)
  %param_1.3 = s32[2,1]{1,0} parameter(1)
  ROOT %gather.1 = bf16[2,8]{1,0} gather(%param_0.3, %param_1.3), offset_dims={1}, collapsed_slice_dims={0}, start_index_map={0}, index_vector_dim=1, slice_sizes={1,8}
}

%body (p: (s32[], f32[32])) -> (s32[], f32[32]) {
  %p = (s32[], f32[32]{0}) parameter(0)
  %i = s32[] get-tuple-element((s32[], f32[32]{0}) %p), index=0
  %x = f32[32]{0} get-tuple-element((s32[], f32[32]{0}) %p), index=1
  %neg = f32[32]{0} negate(f32[32]{0} %x), metadata={op_name="jit(f)/while/body/neg"}
  ROOT %t = (s32[], f32[32]{0}) tuple(s32[] %i, f32[32]{0} %neg)
}

%cond (p.1: (s32[], f32[32])) -> pred[] {
  %p.1 = (s32[], f32[32]{0}) parameter(0)
  %i.1 = s32[] get-tuple-element((s32[], f32[32]{0}) %p.1), index=0
  %n = s32[] constant(10)
  ROOT %lt = pred[] compare(s32[] %i.1, s32[] %n), direction=LT
}

ENTRY %main.9 (a: bf16[8,16], w: bf16[16,4], c: f32[4,100], u: f32[4,1], k: s32[], l: (s32[], f32[32]), g: f32[2,3]) -> bf16[8,4] {
  %a = bf16[8,16]{1,0} parameter(0)
  %w = bf16[16,4]{1,0} parameter(1)
  %cs = (bf16[16,4]{1,0:S(1)}, bf16[16,4]{1,0}, u32[]{:S(2)}) copy-start(bf16[16,4]{1,0} %w)
  %cd = bf16[16,4]{1,0:S(1)} copy-done((bf16[16,4]{1,0:S(1)}, bf16[16,4]{1,0}, u32[]{:S(2)}) %cs)
  %f = bf16[8,4]{1,0} fusion(bf16[8,16]{1,0} %a, bf16[16,4]{1,0:S(1)} %cd), kind=kOutput, calls=%fused_dot, metadata={op_name="jit(f)/dot_general"}
  %c = f32[4,100]{1,0} parameter(2)
  %u = f32[4,1]{1,0} parameter(3)
  %k = s32[] parameter(4)
  %up = f32[4,100]{1,0} fusion(f32[4,100]{1,0} %c, f32[4,1]{1,0} %u, s32[] %k), kind=kLoop, calls=%fused_update
  %l = (s32[], f32[32]{0}) parameter(5)
  %wh = (s32[], f32[32]{0}) while((s32[], f32[32]{0}) %l), condition=%cond, body=%body
  %g = f32[2,3]{1,0} parameter(6)
  %ags = (f32[2,3]{1,0}, f32[4,3]{1,0}) all-gather-start(f32[2,3]{1,0} %g), replica_groups={{0,1}}, dimensions={0}
  %agd = f32[4,3]{1,0} all-gather-done((f32[2,3]{1,0}, f32[4,3]{1,0}) %ags)
  %emb = bf16[100,8]{1,0} parameter(7)
  %ids = s32[2,1]{1,0} parameter(8)
  %gf = bf16[2,8]{1,0} fusion(%emb, %ids), kind=kCustom, calls=%fused_gather
  %cache = bf16[2,10]{1,0} parameter(9)
  %new = bf16[2,1]{1,0} parameter(10)
  %z = s32[] parameter(11)
  %d = bf16[2,10]{1,0} dynamic-update-slice(%cache, %new, %z, %z)
  ROOT %r = bf16[8,4]{1,0} copy(bf16[8,4]{1,0} %f)
}
"""


def test_counts_match_the_hand_computation():
    got = hlo_bytes.count(MODULE)
    # by hand, (all, HBM) bytes per instruction:
    copy_start = (2 * 64 * 2, 64 * 2)  # reads w from HBM (128 B), writes the copy in S(1) (128 B)
    dot = (256 + 128 + 64, 256 + 64)  # a (HBM), the prefetched w (S(1): not HBM), the result (HBM)
    update = (1600 + 16 + 4 + 1600, 4 + 2 * 16)  # in place: the index and the 16-byte update read and written
    neg = (128 + 128, 128 + 128)  # the loop body, once
    compare = (4 + 4 + 1, 4 + 4 + 1)  # the loop condition, once
    all_gather = (24 + 48, 24 + 48)  # the operand and the gathered output (not the operand's alias again)
    copy = (64 + 64, 64 + 64)
    gather = (1600 + 8 + 32, 32 + 8 + 32)  # the table's 2 gathered rows (16 B each), not its 1,600 bytes
    dus = (40 + 4 + 4 + 4 + 40, 4 + 4 + 4 + 4)  # in place: the update and indices read, the update written
    parts = [copy_start, dot, update, neg, compare, all_gather, copy, gather, dus]
    assert got["all"] == sum(p[0] for p in parts) == 4389 + 1640 + 92
    assert got["hbm"] == sum(p[1] for p in parts) == 949 + 72 + 16
    assert got["onchip"] == 128 + 128  # the prefetched copy written, then read by the dot
    assert got["by_kind"]["fusion:in-place update"] == 3220
    assert got["by_kind_hbm"]["copy-start"] == 128
    assert got["by_source_hbm"]["jit(f)/dot_general"] == 320
    assert got["by_source"]["jit(f)/while/body/neg"] == 256


def test_shapes_and_memory_spaces():
    arrs = hlo_bytes.arrays("(bf16[4,3584]{1,0:T(8,128)(2,1)S(1)}, f32[]{:S(2)}, s4[6]{0}, pred[3])")
    assert [(a.dtype, a.dims, a.space, a.nbytes) for a in arrs] == [
        ("bf16", (4, 3584), 1, 4 * 3584 * 2),
        ("f32", (), 2, 4),
        ("s4", (6,), 0, 3),
        ("pred", (3,), 0, 3),
    ]
