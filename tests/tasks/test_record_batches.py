"""RecordBatches: seeded epochs over a record list, checkpointable, and split into per-process blocks."""

from __future__ import annotations

import numpy as np
import pytest

from omnir1_jax.config import ConfigError
from omnir1_jax.tasks.base import RecordBatches


def _ids(batch):
    return list(batch["records"])


def test_epochs_follow_the_seeded_permutation_and_resume():
    records = list(range(10))
    it = RecordBatches(records, lambda chunk: {"n": len(chunk)}, batch_size=4, seed=5)
    got = [_ids(next(it)) for _ in range(4)]
    # the expected order is numpy's permutation of each epoch's seed (seed + epoch), written out independently
    e0, e1 = np.random.default_rng(5).permutation(10), np.random.default_rng(6).permutation(10)
    assert got == [list(e0[:4]), list(e0[4:8]), list(e0[8:]), list(e1[:4])]
    state = it.get_state()
    nxt = _ids(next(it))
    again = RecordBatches(records, lambda chunk: {}, batch_size=4, seed=5)
    again.set_state(state)
    assert _ids(next(again)) == nxt == list(e1[4:8])


def test_process_shares_are_the_blocks_of_the_whole_batch():
    records = list(range(10))
    whole = RecordBatches(records, lambda chunk: {}, batch_size=4, seed=2, share=(0, 1))
    shares = [RecordBatches(records, lambda chunk: {}, batch_size=4, seed=2, share=(i, 2)) for i in range(2)]
    e0, e1 = np.random.default_rng(2).permutation(10), np.random.default_rng(3).permutation(10)
    for step in range(3):
        w = _ids(next(whole))
        a, b = (_ids(next(s)) for s in shares)
        if step < 2:  # full batches: the two blocks make the whole batch
            assert a + b == w == list(e0[4 * step : 4 * step + 4])
        else:  # the epoch's last two records do not split into full blocks: the shares go on to the next epoch
            assert len(w) == 2 and a + b == list(e1[:4])
    assert shares[0].get_state() == shares[1].get_state()  # one position for every process
    with pytest.raises(ConfigError, match="batch_size=4 a multiple of n"):
        RecordBatches(records, lambda chunk: {}, batch_size=4, share=(0, 3))
    with pytest.raises(ConfigError, match="3 training records give no full batch of 4"):
        RecordBatches([1, 2, 3], lambda chunk: {}, batch_size=4, share=(1, 2))
