"""DAVIS J and F: reference values, the official conventions, and numpy <-> JAX agreement."""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import ndimage

from omnir1_jax.evaluation.metrics import (
    MaskInputError,
    davis_jf,
    db_eval_boundary,
    db_eval_boundary_jax,
    db_eval_iou,
    db_eval_iou_jax,
    jf_mean,
    seg2bmap,
)
from omnir1_jax.evaluation.metrics.davis_jax import (
    _dilate_disk_packed,
    _shift_rows_packed,
    db_eval_jf_jax,
    pack_bits,
    seg2bmap_jax,
    unpack_bits,
)
from omnir1_jax.evaluation.metrics.masks import disk_footprint


def _square(h, w, r0, c0, size=20):
    m = np.zeros((h, w), bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


# ---------------------------------------------------------------- independent brute-force transcription


def _bmap_loops(seg):
    """Pixel-by-pixel seg2bmap with the official rules spelled out (zero neighbours past the edge, then the
    last row compares only to the right, the last column only to the bottom, the corner is 0)."""
    h, w = seg.shape
    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            v = seg[y, x]
            e = seg[y, x + 1] if x + 1 < w else False
            s = seg[y + 1, x] if y + 1 < h else False
            se = seg[y + 1, x + 1] if (x + 1 < w and y + 1 < h) else False
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = v != e
            elif x == w - 1:
                b[y, x] = v != s
            else:
                b[y, x] = (v != e) or (v != s) or (v != se)
    return b


def _f_loops(gt, fg, bound_th=0.008):
    h, w = gt.shape
    r = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))
    bf, bg = _bmap_loops(fg), _bmap_loops(gt)

    def near(b, y, x):
        return any(
            b[y + dy, x + dx]
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
            if dx * dx + dy * dy <= r * r and 0 <= y + dy < h and 0 <= x + dx < w
        )

    n_fg, n_gt = int(bf.sum()), int(bg.sum())
    fg_match = sum(near(bg, y, x) for y, x in zip(*np.nonzero(bf)))
    gt_match = sum(near(bf, y, x) for y, x in zip(*np.nonzero(bg)))
    if n_fg == 0 and n_gt == 0:
        p, rc = 1.0, 1.0
    elif n_fg == 0:
        p, rc = 1.0, 0.0
    elif n_gt == 0:
        p, rc = 0.0, 1.0
    else:
        p, rc = fg_match / n_fg, gt_match / n_gt
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


# ---------------------------------------------------------------- reference values


def test_shifted_square_reference_values():
    gt = _square(48, 64, 10, 20)
    pred = _square(48, 64, 12, 23)
    assert db_eval_iou(gt, pred) == pytest.approx(0.6194332, abs=1e-7)  # 306 / 494
    assert db_eval_boundary(gt, pred) == pytest.approx(0.075, abs=1e-12)
    assert float(db_eval_iou_jax(gt, pred)) == pytest.approx(0.6194332, abs=1e-6)
    assert float(db_eval_boundary_jax(gt, pred)) == pytest.approx(0.075, abs=1e-6)
    score = davis_jf(gt, pred)
    assert score.jf == pytest.approx((306 / 494 + 0.075) / 2, abs=1e-12)


def test_empty_conventions():
    empty = np.zeros((16, 20), bool)
    blob = _square(16, 20, 3, 4, size=6)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_boundary(empty, empty) == 1.0
    # one side empty: J = 0; F: precision 1 / recall 0 (or the converse) -> F = 0
    assert db_eval_iou(blob, empty) == 0.0 and db_eval_iou(empty, blob) == 0.0
    assert db_eval_boundary(blob, empty) == 0.0 and db_eval_boundary(empty, blob) == 0.0
    stack_a = np.stack([empty, blob, empty, blob])
    stack_s = np.stack([empty, empty, blob, blob])
    np.testing.assert_array_equal(db_eval_iou(stack_a, stack_s), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(db_eval_boundary(stack_a, stack_s), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(db_eval_iou_jax(stack_a, stack_s)), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(db_eval_boundary_jax(stack_a, stack_s)), [1.0, 0.0, 0.0, 1.0])


def test_full_frame_mask_has_no_boundary():
    full = np.ones((9, 11), bool)
    assert not seg2bmap(full).any()
    # full vs empty: J = 0, but both boundary maps are empty, so F = 1 (official behaviour)
    assert db_eval_iou(full, np.zeros_like(full)) == 0.0
    assert db_eval_boundary(full, np.zeros_like(full)) == 1.0


def test_seg2bmap_matches_pixel_rules():
    rng = np.random.default_rng(3)
    for shape in [(7, 9), (1, 6), (6, 1), (5, 5)]:
        seg = rng.random(shape) < 0.5
        np.testing.assert_array_equal(seg2bmap(seg), _bmap_loops(seg))


def test_void_pixels_are_excluded():
    gt = _square(20, 20, 2, 2, size=8)
    pred = _square(20, 20, 2, 2, size=8)
    pred[12:16, 12:16] = True  # a false positive...
    void = np.zeros_like(gt)
    void[11:17, 11:17] = True  # ...inside a void region
    assert db_eval_iou(gt, pred) == pytest.approx(64 / 80)
    assert db_eval_iou(gt, pred, void) == 1.0
    assert db_eval_boundary(gt, pred, void) == 1.0
    assert float(db_eval_boundary_jax(gt, pred, void)) == 1.0


def test_numpy_f_matches_brute_force_and_tolerance_override():
    rng = np.random.default_rng(5)
    for trial in range(4):
        h, w = 13 + trial, 17 + 2 * trial
        gt = rng.random((h, w)) < 0.4
        fg = rng.random((h, w)) < 0.4
        for bound_th in (0.008, 0.1, 2):
            assert db_eval_boundary(gt, fg, bound_th=bound_th) == pytest.approx(_f_loops(gt, fg, bound_th), abs=1e-12)


# ---------------------------------------------------------------- numpy <-> JAX


def _random_blobs(rng, shape, p):
    """Smooth-ish random masks (coarse noise upsampled) mixed with pixel noise: long boundaries of all shapes."""
    *lead, h, w = shape
    coarse = rng.random((*lead, (h + 3) // 4, (w + 3) // 4)) < p
    up = np.repeat(np.repeat(coarse, 4, axis=-2), 4, axis=-1)[..., :h, :w]
    return up ^ (rng.random(shape) < 0.03)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jax_matches_numpy_random_batched(seed):
    rng = np.random.default_rng(seed)
    h, w = [(37, 53), (64, 41), (29, 90)][seed]
    gt = _random_blobs(rng, (3, h, w), 0.4)
    pred = _random_blobs(rng, (3, h, w), 0.4)
    # frames with the special cases: border-touching, full frame, empty, identical
    gt[0, :, :5] = True
    pred[0, :4, :] = True
    gt[1] = True
    pred[2] = gt[2]
    j_np, f_np = db_eval_iou(gt, pred), db_eval_boundary(gt, pred)
    np.testing.assert_allclose(np.asarray(db_eval_iou_jax(gt, pred)), j_np, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(db_eval_boundary_jax(gt, pred)), f_np, atol=1e-6, rtol=0)
    assert f_np[2] == 1.0 and j_np[2] == 1.0


def test_jax_matches_numpy_leading_batch_dim_and_void():
    rng = np.random.default_rng(11)
    gt = _random_blobs(rng, (2, 3, 33, 47), 0.5)
    pred = _random_blobs(rng, (2, 3, 33, 47), 0.5)
    void = rng.random(gt.shape) < 0.1
    j, f = db_eval_jf_jax(gt.astype(np.uint8), pred.astype(np.float32), void)
    assert j.shape == f.shape == (2, 3)
    for b in range(2):
        np.testing.assert_allclose(np.asarray(j[b]), db_eval_iou(gt[b], pred[b], void[b]), atol=1e-6, rtol=0)
        np.testing.assert_allclose(np.asarray(f[b]), db_eval_boundary(gt[b], pred[b], void[b]), atol=1e-6, rtol=0)


def test_jax_matches_numpy_large_tolerance():
    """bound_pix = ceil(0.008 * ||(480, 854)||) = 8: the 17x17 disk used at DAVIS resolution."""
    rng = np.random.default_rng(7)
    gt = _random_blobs(rng, (2, 96, 171), 0.3)
    pred = _random_blobs(rng, (2, 96, 171), 0.3)
    for bound_th in (8, 0.05):
        np.testing.assert_allclose(
            np.asarray(db_eval_boundary_jax(gt, pred, bound_th=bound_th)),
            db_eval_boundary(gt, pred, bound_th=bound_th),
            atol=1e-6,
            rtol=0,
        )


_dilate_jit = jax.jit(_dilate_disk_packed, static_argnums=1)
_shift_jit = jax.jit(_shift_rows_packed, static_argnums=1)


@pytest.mark.parametrize("height", [1, 32, 33, 70])
def test_bit_packing_seg2bmap_and_disk_dilation(height):
    """The packed-column internals of the JAX F against numpy shifts and scipy's dilation."""
    rng = np.random.default_rng(height)
    x = rng.random((2, height, 9)) < 0.3
    packed = pack_bits(x)
    np.testing.assert_array_equal(np.asarray(unpack_bits(packed, height)), x)
    np.testing.assert_array_equal(np.asarray(seg2bmap_jax(x)), seg2bmap(x))
    for k in (-70, -33, -32, -5, 1, 31, 32, 33):  # out[y] = in[y + k], zero past the ends, across word borders
        want = np.zeros_like(x)
        if abs(k) < height:
            want[:, max(-k, 0) : height - max(k, 0)] = x[:, max(k, 0) : height - max(-k, 0)]
        np.testing.assert_array_equal(np.asarray(unpack_bits(_shift_jit(packed, k), height)), want, err_msg=f"k={k}")
    sparse = rng.random((2, height, 41)) < 0.02
    for radius in (0, 1, 8):
        got = np.asarray(unpack_bits(_dilate_jit(pack_bits(sparse), radius), height))
        want = ndimage.binary_dilation(sparse, structure=disk_footprint(radius)[None])
        np.testing.assert_array_equal(got, want, err_msg=f"radius {radius}")


# ---------------------------------------------------------------- input checks and helpers


def test_bad_inputs_raise_typed_errors():
    a = np.zeros((4, 5), bool)
    with pytest.raises(MaskInputError, match="segmentation has shape"):
        db_eval_iou(a, np.zeros((4, 6), bool))
    with pytest.raises(MaskInputError, match="0.5"):
        db_eval_boundary(a, np.full((4, 5), 0.5))
    with pytest.raises(MaskInputError, match="dimensions"):
        db_eval_iou(np.zeros((1, 1, 4, 5)), np.zeros((1, 1, 4, 5)))
    with pytest.raises(MaskInputError, match="whole number"):
        db_eval_boundary(a, a, bound_th=1.5)
    with pytest.raises(MaskInputError, match="segmentation has shape"):
        db_eval_boundary_jax(a, np.zeros((4, 6), bool))


def test_jf_mean():
    assert jf_mean([1.0, 0.5], [0.0, 0.5]) == pytest.approx(0.5)
    assert jf_mean([0.8], [0.4]) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="shape"):
        jf_mean([1.0], [1.0, 0.0])


def test_import_pulls_neither_torch_nor_the_evaluator():
    """The measures and protocols import without the evaluator loop, the data pipelines, the policy or torch."""
    code = (
        "import sys, omnir1_jax.evaluation.metrics, omnir1_jax.evaluation.metrics.qa, "
        "omnir1_jax.evaluation.metrics.stats, omnir1_jax.evaluation.protocols\n"
        "heavy = ('torch', 'flax', 'grain', 'orbax', 'omnir1_jax.evaluation.loop', 'omnir1_jax.data', "
        "'omnir1_jax.policy', 'omnir1_jax.models', 'omnir1_jax.config')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_evaluator_names_load_on_first_use():
    code = (
        "import sys\n"
        "from omnir1_jax import evaluation\n"
        "before = 'omnir1_jax.evaluation.loop' in sys.modules\n"
        "from omnir1_jax.evaluation import evaluate_policy\n"
        "from omnir1_jax.evaluation.loop import evaluate_policy as f\n"
        "print(before, evaluate_policy is f, 'evaluate_policy' in dir(evaluation))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]
