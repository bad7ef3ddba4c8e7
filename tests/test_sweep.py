"""The sweep's outputs and resume, and the Table-4 notebook on a sweep.

The per-seed results are written here as finished runs write them (``<arm>/seed<k>/summary.json`` and
``metrics.jsonl``), with known values, so every figure of ``sweep.json`` has a hand-computed expected value.
The slow test runs a real two-arm, two-seed sweep end to end and re-runs it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats as st

from omnir1_jax.sweep import markdown, run_arm, summarize_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = {
    "synthetic_cpu_table4_rk": ([0.50, 0.55], [0.60, 0.64]),
    "synthetic_cpu_table4_rk_ra": ([0.51, 0.52], [0.62, 0.66]),
    "synthetic_cpu_table4_rk_rg": ([0.49, 0.53], [0.80, 0.86]),
    "synthetic_cpu_table4_rk_ra_rg": ([0.50, 0.50], [0.78, 0.79]),
}


def _write_seed(arm_dir, seed, before, after, steps=3):
    d = os.path.join(arm_dir, f"seed{seed}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"seed": seed, "before": before, "after": after, "evals": [], "steps": steps}, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"step": s, "reward/total": before + (after - before) * s / steps}) + "\n")


@pytest.fixture()
def sweep_dir(tmp_path):
    arms = {}
    for name, (before, after) in ROWS.items():
        for k in (0, 1):
            _write_seed(str(tmp_path / name), k, before[k], after[k])
        arms[name] = {
            "dir": str(tmp_path / name),
            "paper": (("J&F", 39.9),) if name.endswith("_rk_rg") else (),
            "wall_s": 60.0,
        }
    return tmp_path, arms


def test_sweep_json_has_the_documented_shape_and_hand_values(sweep_dir):
    tmp, arms = sweep_dir
    sweep = summarize_sweep(arms, (0, 1))
    assert sweep["metric"] == "J&F" and set(sweep["arms"]) == set(ROWS)
    rg = sweep["arms"]["synthetic_cpu_table4_rk_rg"]
    assert {k: (v["before"], v["after"]) for k, v in rg["seeds"].items()} == {"0": (0.49, 0.80), "1": (0.53, 0.86)}
    assert rg["mean_after"] == pytest.approx(0.83) and rg["mean_before"] == pytest.approx(0.51)
    assert rg["wall_s"] == 60.0 and rg["paper"] == {"J&F": 39.9}
    for key in ("ci_after", "iqm_after"):
        assert key in rg
    # six pairs of four arms; rk_rg vs rk: differences 0.20, 0.22 -> mean 0.21
    assert len(sweep["pairs"]) == 6
    pair = next(
        p for p in sweep["pairs"] if (p["a"], p["b"]) == ("synthetic_cpu_table4_rk", "synthetic_cpu_table4_rk_rg")
    )
    assert pair["mean"] == pytest.approx(0.21) and pair["prob_improvement"] == 1.0 and pair["seeds"] == [0, 1]
    lib = st.bootstrap(
        (np.array([0.20, 0.22]),), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)
    )
    assert pair["ci"] == pytest.approx([lib.confidence_interval.low, lib.confidence_interval.high])
    md = markdown(sweep)
    assert "| synthetic_cpu_table4_rk_rg | 0.510 [" in md and "J&F 39.9" in md


def test_a_finished_arm_is_not_run_again(sweep_dir):
    from omnir1_jax.config import load_config

    tmp, arms = sweep_dir
    cfg = load_config(os.path.join(ROOT, "experiments", "synthetic_cpu_table4.py:rk"))
    # every seed has its result: nothing to train (a real call; it would start a bridge and train otherwise)
    assert run_arm(cfg, (0, 1), arms["synthetic_cpu_table4_rk"]["dir"]) == 0.0


def test_the_table4_notebook_reads_the_sweep(sweep_dir):
    import nbformat
    from nbclient import NotebookClient

    from omnir1_jax.evaluation.sweep_figure import sweep_figure

    tmp, arms = sweep_dir
    sweep = summarize_sweep(arms, (0, 1))
    with open(tmp / "sweep.json", "w") as f:
        json.dump(sweep, f)
    assert os.path.getsize(sweep_figure(sweep, {n: a["dir"] for n, a in arms.items()}, str(tmp / "sweep.png"))) > 0
    nb = nbformat.read(os.path.join(ROOT, "experiments", "notebooks", "ablation.ipynb"), as_version=4)
    os.environ["SWEEP_DIR"] = str(tmp)
    try:
        NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    finally:
        del os.environ["SWEEP_DIR"]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "4 rows, {'R_K': 2, 'R_K+R_A': 2, 'R_K+R_G': 2, 'R_K+R_A+R_G': 2} seeds" in text
    assert "R_K+R_G      0.830 [" in text
    assert "ordering by mean, synthetic: R_K+R_G > R_K+R_A+R_G > R_K+R_A > R_K" in text
    assert os.path.exists(tmp / "table4_intervals.png")
