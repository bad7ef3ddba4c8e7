"""``grpo.micro_batches``: the learner's GRPO update accumulated over row slices equals the one-piece update
(same sampled group, same loss, same parameters after the step); 0 resolves from the device count; a count that
does not divide the rows is a config error naming the field."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from omnir1_jax.config import ConfigError
from omnir1_jax.rl.update import resolve_micro_batches
from tests.train._tiny import losses, make_learner, params_of, perturb, tiny_config


def _cfg(tmp_path, micro: int):
    cfg = tiny_config(str(tmp_path / "syn"), str(tmp_path / f"run{micro}"), steps=1, grounder_bridge=False)
    return dataclasses.replace(
        cfg,
        grpo=dataclasses.replace(
            cfg.grpo, micro_batches=micro, rewards=dataclasses.replace(cfg.grpo.rewards, alpha_a=0.0, alpha_g=0.0)
        ),
    )  # no System 2 needed


def test_micro_batched_learner_step_equals_one_piece(tmp_path):
    out = {}
    for micro in (1, 2):
        tr = make_learner(_cfg(tmp_path, micro), None)
        assert tr.loss_spec.micro_batches == micro
        perturb(tr.policy)  # away from the reference: a non-zero loss and gradient
        try:
            history = tr.train(progress=False)
        finally:
            tr.close()
        out[micro] = (losses(history), params_of(tr.policy))
    assert out[1][0][0] != 0.0
    np.testing.assert_allclose(out[2][0], out[1][0], rtol=1e-5, atol=1e-6)
    # Adam's first step moves each weight by about lr = 1e-3 x sign(gradient): a wrong accumulation shows at that
    # scale; float rounding of a near-zero gradient, at 1e-6
    for a, b in zip(jax.tree.leaves(out[2][1]), jax.tree.leaves(out[1][1])):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


def test_micro_batches_that_do_not_divide_the_rows_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"grpo\.micro_batches=3.*divide the batch of 4 rows"):
        make_learner(_cfg(tmp_path, 3), None)  # 2 prompts x group 2


@pytest.mark.parametrize(
    "requested, rows, devices, group, want",
    [
        (0, 64, 64, 8, 1),
        (0, 64, 8, 8, 8),
        (0, 64, 16, 8, 4),
        (0, 64, 1, 8, 8),
        (0, 24, 16, 2, 2),
        (0, 6, 4, 2, 3),
        (0, 5, 1, 1, 5),
        (0, 4, 1, 2, 2),
        (4, 64, 8, 8, 4),
    ],
)
def test_resolve_micro_batches_by_hand(requested, rows, devices, group, want):
    assert resolve_micro_batches(requested, rows, devices, group) == want


def test_explicit_micro_batches_must_keep_groups_whole():
    with pytest.raises(ValueError, match="slices of whole groups of 8"):
        resolve_micro_batches(16, 64, 8, 8)  # 4-row slices would cut the groups of 8
