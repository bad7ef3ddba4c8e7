"""COCO RLE encode / decode against pycocotools."""

import numpy as np
import pycocotools.mask as pm
import pytest

from omnir1_jax.data import rle
from omnir1_jax.data.errors import DataFormatError

# pycocotools 2.0.11 warns about numpy 2's copy keyword on every decode; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _random_masks():
    rng = np.random.default_rng(0)
    for t in range(200):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        m = rng.random((h, w)) < rng.random()
        if t % 9 == 0:
            m[:] = False
        if t % 11 == 0:
            m[:] = True
        if t % 13 == 0:  # long runs need multi-group (> 5 bit) encodings
            m = np.zeros((300, 400), bool)
            m[50:250, 100:330] = True
        yield m


def test_encode_matches_pycocotools():
    for m in _random_masks():
        ref = pm.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = rle.encode(m)
        assert mine["size"] == [int(v) for v in ref["size"]]
        assert mine["counts"] == ref["counts"].decode("ascii")
        assert rle.area(mine) == int(pm.area(ref))


def test_decode_matches_pycocotools():
    for m in _random_masks():
        ref = pm.encode(np.asfortranarray(m.astype(np.uint8)))
        np.testing.assert_array_equal(rle.decode(ref), pm.decode(ref).astype(bool))
        as_str = {"size": ref["size"], "counts": ref["counts"].decode("ascii")}
        np.testing.assert_array_equal(rle.decode(as_str), m)


def test_decode_uncompressed_counts_matches_pycocotools():
    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True
    flat = m.reshape(-1, order="F").astype(int)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    unc = {"size": [7, 9], "counts": runs}
    ref = pm.frPyObjects(unc, 7, 9)
    np.testing.assert_array_equal(rle.decode(unc), pm.decode(ref).astype(bool))


@pytest.mark.parametrize(
    "bad",
    [
        {"size": [4, 4], "counts": "0"},  # runs sum to 0, not 16
        {"size": [4, 4], "counts": "\x7f\x7f"},  # characters outside the alphabet
        {"counts": "04"},  # no size
        {"size": [4, 4], "counts": "P"},  # ends inside a run length (continuation bit set)
    ],
)
def test_bad_rle_raises_typed_error_naming_file_and_record(bad):
    with pytest.raises(DataFormatError) as e:
        rle.decode(bad, path="x/mask_dict.json", record="revos/train/v/exp 0")
    assert "x/mask_dict.json" in str(e.value) and "revos/train/v/exp 0" in str(e.value)


def test_polygon_raster_close_to_pycocotools():
    poly = [[2.0, 3.0, 25.0, 5.0, 20.0, 17.0, 4.0, 14.0]]
    ref = pm.decode(pm.merge(pm.frPyObjects(poly, 20, 28))).astype(bool)
    mine = rle.polygons_to_mask(poly, 20, 28)
    # Different scan converters: they may disagree only within one pixel of the reference's boundary.
    from scipy.ndimage import binary_dilation, binary_erosion

    full = np.ones((3, 3), bool)
    band = binary_dilation(ref, full) & ~binary_erosion(ref, full)
    assert not ((mine ^ ref) & ~band).any()
    assert (mine & ref).sum() / (mine | ref).sum() > 0.8
