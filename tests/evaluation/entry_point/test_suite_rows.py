"""Every multiple-choice QA row (``experiments/qa_*.py`` and their variants: Omni-R1 Table 3, Table 7's four
settings, CrossOmni Table 10) runs ``python -m omnir1_jax.evaluate --config ROW --set data.root=FIXTURE`` with the
tiny model on the synthetic copies of its suites, to a summary with the paper's columns (``-m slow``)."""

import json
import os
import subprocess
import sys

import pytest

from omnir1_jax.config import load_config
from omnir1_jax.data.suites import read_suite, suite
from omnir1_jax.data.synthetic.suites import WRITERS, write_suites
from omnir1_jax.evaluation.metrics.qa import extract_letter
from tests.experiments.specs import spec_id, specs
from tests.train._tiny import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROWS = specs("qa_*.py")
TINY = [
    "model.checkpoint=None",
    "model.preset='tiny'",
    "model.dtype='float32'",
    f"model.overrides={TINY_MODEL!r}",
    "grpo.max_new_tokens=4",
    "data.max_frames=2",
    "data.s1_min_pixels=3136",
    "data.s1_max_pixels=3136",
    "data.batch_size=3",
]


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return write_suites(str(tmp_path_factory.mktemp("suites")), list(WRITERS))


def test_the_rows_are_the_papers():
    cfgs = {load_config(p).name: load_config(p) for p in ROWS}
    assert len(cfgs) == 11
    assert cfgs["qa_omni_r1_table3"].data.suites == ("omnibench", "videomme", "mvbench")
    for res in (128, 256):
        for think in (False, True):
            d = cfgs[f"qa_omni_r1_table7_r{res}" + ("_thinking" if think else "")].data
            assert (d.suites, d.s1_max_pixels, d.thinking) == (("videomme", "mvbench"), res * 28 * 28, think)
    for size in ("3b", "7b"):
        for stage, ckpt in (
            ("base", f"checkpoints/Qwen2.5-Omni-{size.upper()}"),
            ("sft", f"runs/crossomni_sft_{size}/hf"),
            ("grpo", f"runs/crossomni_grpo_{size}/hf"),
        ):
            c = cfgs[f"qa_crossomni_table10_{stage}_{size}"]
            assert c.data.suites == ("dailyomni", "worldsense", "avut") and c.model.checkpoint == ckpt


def _check_summary(out_dir, cfg, fixture_root):
    with open(os.path.join(out_dir, "summary.json")) as f:
        s = json.load(f)
    names = cfg.data.suites
    want = [label for n in names for label, _ in suite(n).columns] + (["Average"] if len(names) > 1 else [])
    assert list(s["columns"]) == want
    for n in names:
        recs = read_suite(n, os.path.join(fixture_root, n))
        assert s["suites"][n]["done"] == s["suites"][n]["total"] == len(recs)
        with open(os.path.join(out_dir, n, "results.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        assert [r["id"] for r in rows] == [r.id for r in recs]
        for rec, row in zip(recs, rows):  # every choice is the extraction of the logged answer
            assert row["predicted"] == extract_letter(row["answer"], rec.letters, rec.option_texts)
        acc = sum(r["predicted"] == rec.answer for r, rec in zip(rows, recs)) / len(recs)
        assert s["suites"][n]["table"]["overall"]["accuracy"] == pytest.approx(acc)


@pytest.mark.slow
@pytest.mark.parametrize("path", ROWS, ids=spec_id)
def test_row_runs_to_a_summary_with_the_tiny_model(path, fixture_root, tmp_path):
    from omnir1_jax.evaluate import main

    out = str(tmp_path / "out")
    args = ["--config", path, "--out", out, "--set", f"data.root={fixture_root!r}"]
    for s in TINY:
        args += ["--set", s]
    assert main(args) == 0
    _check_summary(out, load_config(path, [f"data.root={fixture_root!r}"] + TINY), fixture_root)


@pytest.mark.slow
def test_the_command_line_of_table3(fixture_root, tmp_path):
    """The documented command itself, in a fresh process."""
    path = os.path.join(ROOT, "experiments", "qa_omni_r1_table3.py")
    out = str(tmp_path / "run")
    cmd = [
        sys.executable,
        "-m",
        "omnir1_jax.evaluate",
        "--config",
        path,
        "--set",
        f"data.root={fixture_root!r}",
        "--set",
        f"run.out_dir={out!r}",
    ]
    for s in TINY:
        cmd += ["--set", s]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": ROOT}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| OmniBench Avg | VideoMME General | VideoMME Short | MVBench Avg | Average |" in proc.stdout
    summary = os.path.join(out, "eval", "suites_test")
    _check_summary(summary, load_config(path, [f"data.root={fixture_root!r}"] + TINY), fixture_root)
