"""Every experiment file resolves, documents itself, and runs one step with the tiny model swapped in.

Default run: all files resolve; two synthetic Table-4 rows (R_K, R_K+R_G) each run one GRPO step against the real
(synthetic-backend) bridge, their logged totals obey their reward weights, and the ablation notebook runs end to
end on those logs. ``-m slow``: one step of every other experiment too (VOS, RefAID on the synthetic AVS world,
CrossOmni SFT + GRPO on a tiny JSONL fixture with a Python judge).
"""

import ast
import dataclasses
import os

import numpy as np
import pytest

from omnir1_jax.config import DataSpec, ExperimentConfig, ModelSpec, load_config
from omnir1_jax.data.synthetic import writer
from omnir1_jax.policy import build_policy, build_tokenizer
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.runtime.records import read_records
from omnir1_jax.runtime.world import ensure_synthetic
from tests.experiments.specs import ROOT, spec_id, specs, variants

pytestmark = pytest.mark.torch  # the bridge subprocess runs the PyTorch side

SPECS = specs()  # every config: a file, or FILE:VARIANT for each variant of a file that has them
SYNTHETIC_ROWS = specs("synthetic_cpu_table4.py")
# Two rows run in the default run (the CPU budget); the other two and every other experiment under -m slow.
DEFAULT_ROWS = [s for s in SYNTHETIC_ROWS if s.endswith((":rk", ":rk_rg"))]
# The multiple-choice QA rows (qa_*.py) only evaluate; tests/evaluation/entry_point/test_suite_rows.py runs each
# of them.
OTHERS = [
    s
    for s in SPECS
    if s not in DEFAULT_ROWS and not s.endswith("synthetic_cpu.py") and not os.path.basename(s).startswith("qa_")
]
# A variant's run is named <file>_<variant>, except where a run kept its earlier name (its outputs' directory).
NAMES = {"table6.py:beta0001": "hallucination_beta0001"}


def name_of(spec: str) -> str:
    base = os.path.basename(spec)
    return NAMES.get(base, base.replace(".py:", "_").removesuffix(".py"))


def docs_of(spec: str) -> str:
    """The part of the file's docstring that documents ``spec``: the whole docstring for a file of one config, else
    the variant's paragraph (from its line ````variant``:`` to the next variant's)."""
    path, _, variant = spec.partition(":") if spec.count(":") else (spec, "", "")
    with open(path) as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    if not variant:
        return doc
    lines = doc.splitlines()
    starts = sorted(i for i, line in enumerate(lines) for v in variants(path) if line.startswith(f"``{v}``:"))
    i = next(i for i in starts if lines[i].startswith(f"``{variant}``:"))
    end = next((j for j in starts if j > i), len(lines))
    return "\n".join(lines[i:end])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.crossomni.fixtures import write_fixture

    base = tmp_path_factory.mktemp("worlds")
    vos = str(base / "vos")
    ensure_synthetic(dataclasses.replace(SYNTHETIC, root=vos))  # the generator's own parameters: read back as is
    avs = str(base / "avs")
    writer.write_avs(avs, 4, seed=0, height=56, width=84)
    co = str(base / "co")
    write_fixture(co)
    coco = str(base / "refcocog")
    _write_refcocog(coco)
    return {"vos": vos, "avs": avs, "co": co, "refcocog": coco, "runs": str(base / "runs")}


def _write_refcocog(root: str) -> None:
    """A two-image refCOCOg tree in the REFER layout (``refs(umd).p``, ``instances.json``, ``train2014/``) with
    three training sentences, so the refCOCOg experiment runs on refCOCOg records (not on Ref-AVS clips)."""
    import json
    import pickle

    from PIL import Image

    os.makedirs(os.path.join(root, "train2014"), exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns, refs = [], [], []
    for i in range(2):
        name = f"COCO_train2014_{i:012d}.jpg"
        Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)).save(os.path.join(root, "train2014", name))
        images.append({"id": i, "file_name": name, "height": 56, "width": 84})
        x = 10 + 30 * i
        anns.append(
            {
                "id": 10 + i,
                "image_id": i,
                "category_id": 1,
                "bbox": [x, 8.0, 20.0, 24.0],
                "iscrowd": 0,
                "segmentation": [[x, 8.0, x + 20, 8.0, x + 20, 32.0, x, 32.0]],
            }
        )
        refs.append(
            {
                "ref_id": i,
                "ann_id": 10 + i,
                "image_id": i,
                "split": "train",
                "category_id": 1,
                "sentences": [
                    {"sent": f"the box number {i}", "sent_id": 100 + 2 * i},
                    {"sent": f"box {i}", "sent_id": 101 + 2 * i},
                ][: 2 - i],
            }
        )
    with open(os.path.join(root, "instances.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}, f)
    with open(os.path.join(root, "refs(umd).p"), "wb") as f:
        pickle.dump(refs, f, protocol=2)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    from omnir1_jax.config import BridgeSpec

    b = open_bridge(
        BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        str(tmp_path_factory.mktemp("bridge")),
        wait_s=120,
    )
    yield b
    b.close()


# The synthetic world every VOS experiment runs on here (small frames; what ensure_synthetic checks on reading).
SYNTHETIC = DataSpec(dataset="synthetic", synthetic_videos=6, synthetic_size=(56, 84))


def tiny(cfg: ExperimentConfig, world, address: str) -> ExperimentConfig:
    """The experiment with the tiny model, tiny synthetic data, the test bridge and a one-step run."""
    small = dict(
        batch_size=2, min_frames=4, max_frames=4, s1_max_pixels=4 * 28 * 28, s1_min_pixels=4 * 28 * 28, workers=0
    )
    d = cfg.data
    run = {}
    if d.task == "mixture":  # Table 6's joint run: one Ref-AVS and one VOS prompt per batch, both worlds
        base = os.path.dirname(world["vos"])
        data = dataclasses.replace(
            d,
            dataset="synthetic",
            root=base,
            split="train",
            mixture=(),
            tasks=(
                ("refaid", "refavs", os.path.basename(world["avs"]), 1),
                ("vos", "synthetic", os.path.basename(world["vos"]), 1),
            ),
            **{
                f: getattr(SYNTHETIC, f)
                for f in (
                    "synthetic_videos",
                    "synthetic_size",
                    "synthetic_colours",
                    "synthetic_objects",
                    "synthetic_templates",
                    "synthetic_shapes",
                    "synthetic_ambiguous",
                )
            },
            **small,
        )
        run = {"epoch_unit": "expressions"}  # the tiny AVS world has fewer training videos than a batch
    elif d.task == "qa":
        data = dataclasses.replace(d, root=world["co"], split="train", **small)
    elif d.dataset == "refcocog":  # its own data: the refCOCOg reader and records run too
        data = dataclasses.replace(d, root=world["refcocog"], split="train", **small)
    elif d.dataset == "refavs" or d.task == "refaid":
        data = dataclasses.replace(d, dataset="refavs", root=world["avs"], split="train", **small)
    else:
        data = dataclasses.replace(
            d,
            dataset="synthetic",
            root=world["vos"],
            split="train",
            mixture=(),
            **{
                f: getattr(SYNTHETIC, f)
                for f in (
                    "synthetic_videos",
                    "synthetic_size",
                    "synthetic_colours",
                    "synthetic_objects",
                    "synthetic_templates",
                    "synthetic_shapes",
                    "synthetic_ambiguous",
                )
            },
            **small,
        )
    return dataclasses.replace(
        cfg,
        model=ModelSpec(overrides=(("hidden_size", 32), ("num_layers", 1))),
        data=data,
        bridge=dataclasses.replace(cfg.bridge, start=False, addresses=(address,), workers=1, timeout_s=120),
        grpo=dataclasses.replace(cfg.grpo, group_size=2, max_new_tokens=8),
        sft=dataclasses.replace(cfg.sft, batch_size=2, steps=1),
        run=dataclasses.replace(
            cfg.run, out_dir=os.path.join(world["runs"], cfg.name), steps=1, checkpoint_every=0, resume=False, **run
        ),
    )


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_experiment_resolves_and_documents_command_hardware_and_number(path, world):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig) and cfg.name == name_of(path)
    assert cfg.run.out_dir == f"runs/{cfg.name}"
    with open(path.partition(".py")[0] + ".py") as f:
        assert "Hardware" in ast.get_docstring(ast.parse(f.read()))
    doc = docs_of(path)
    assert "python -m omnir1_jax." in doc
    if ".py:" in path:  # the variant's own command selects it
        assert f"experiments/{spec_id(path)}" in doc
    if not os.path.basename(path).startswith("synthetic_cpu"):
        assert "Paper" in doc and "**" in doc  # the paper's number, in bold
    cfg_t = tiny(cfg, world, "ipc://unused-bridge.sock")
    assert cfg_t.grpo.rewards == cfg.grpo.rewards and cfg_t.grpo.beta == cfg.grpo.beta  # what the row is about
    assert cfg_t.data.dataset == cfg.data.dataset or cfg.data.dataset in ("mixture", "synthetic")
    if cfg.data.dataset == "refcocog":  # the tiny refCOCOg tree is read by the real reader: 3 train sentences
        assert [r.expression for r in read_records(cfg_t.data)] == ["the box number 0", "box 0", "the box number 1"]


def test_every_row_of_the_paper_is_one_config():
    """33 configs (25 of them variants of 6 files), each with its own run name."""
    assert len(SPECS) == 33 and len({name_of(s) for s in SPECS}) == 33
    files = {os.path.basename(s.partition(":")[0]) for s in SPECS if ":" in os.path.basename(s)}
    assert {f: len(variants(os.path.join(ROOT, "experiments", f))) for f in files} == {
        "crossomni.py": 4,
        "qa_crossomni_table10.py": 6,
        "qa_omni_r1_table7.py": 4,
        "synthetic_cpu_table4.py": 4,
        "table4.py": 4,
        "table6.py": 3,
    }


def test_paper_hyper_parameters_in_the_files():
    c = {name_of(p): load_config(p) for p in SPECS}
    assert c["hallucination_beta0001"].grpo.beta == 0.001 and c["omni_r1_7b_vos"].grpo.beta == 0.04
    for name, (ak, aa, ag) in {
        "table4_rk": (1, 0, 0),
        "table4_rk_ra": (1, 1, 0),
        "table4_rk_rg": (1, 0, 1),
        "table4_rk_ra_rg": (1, 1, 1),
    }.items():
        w = c[name].grpo.rewards
        assert (w.alpha_k, w.alpha_a, w.alpha_g) == (ak, aa, ag)
        assert c[name].grpo.num_keyframes == 4  # the paper's "exactly four keyframes" (Table 4)
        assert c["synthetic_cpu_" + name].grpo.rewards == w
    for size in ("3b", "7b"):
        s = c[f"crossomni_sft_{size}"].sft
        assert (s.lora_rank, s.lora_alpha, s.lr, s.batch_size) == (16, 32.0, 1e-5, 32)
        g = c[f"crossomni_grpo_{size}"]
        assert (g.optim.lr, g.data.batch_size, g.grpo.group_size) == (5e-6, 16, 4)
    v = c["omni_r1_7b_vos"]
    assert (v.optim.lr, v.optim.weight_decay, v.grpo.group_size, v.data.min_frames, v.data.max_frames) == (
        1e-6,
        0.01,
        8,
        8,
        24,
    )
    # System 2 of the evaluation recipes is the policy (Omni-R1 section 4.1), not the base checkpoint
    for name in ("omni_r1_7b_vos", "omni_r1_7b_refaid"):
        assert c[name].bridge.grounder == "qwen2_5_omni:@policy" and c[name].bridge.start
    # Omni-R1 Table 6: AVS 1,600 and 10,400 samples; the joint run mixes Ref-AVS and ReVOS + MeViS in every batch
    for name, samples in (("omni_r1_7b_refaid", 1600), ("hallucination_beta0001", 1600), ("table6_avs_10400", 10400)):
        assert c[name].run.steps * c[name].data.batch_size == samples and c[name].data.task == "refaid"
    j = c["table6_avs_vos"]
    assert j.data.task == "mixture" and [(t, d) for t, d, _, _ in j.data.tasks] == [
        ("refaid", "refavs"),
        ("vos", "mixture"),
    ]
    assert j.data.mixture == (("revos", "revos"), ("mevis", "mevis")) and j.grpo.beta == 0.04
    assert (j.grpo.rewards.alpha_k, j.grpo.rewards.alpha_a, j.grpo.rewards.alpha_g) == (1, 0, 1)
    # item 5: the refCOCOg stage trains grounding on one System-2-resolution image, 250 x 8 = 2,000 images
    r = c["refcoco_system2_7b"]
    assert (r.data.task, r.data.dataset, r.data.s1_max_pixels) == ("grounding", "refcocog", 900 * 28 * 28)
    assert (r.run.steps * r.data.batch_size, r.run.epoch_unit, r.grpo.beta, r.optim.lr) == (2000, "videos", 0.04, 1e-6)


def _grpo_one_step(cfg, bridge, scorer, policy=None, tokenizer=None):
    """One GRPO step of ``cfg`` through the one learner (``scorer``: one object for all experiments, so the jit
    caches are shared)."""
    from tests.train._tiny import make_learner

    tr = make_learner(cfg, bridge, policy=policy)
    tr.scorer = scorer
    try:
        hist = tr.train(1, progress=False)
    finally:
        tr.close()
    return hist[0]


@pytest.mark.slow  # ~13 s; the rows' weights are checked by test_paper_hyper_parameters_in_the_files (default)
def test_synthetic_table4_rows_run_a_step(world, bridge):
    from omnir1_jax.policy import make_scorer

    scorer = make_scorer(False, 1.0)
    tok = build_tokenizer(ModelSpec())
    policy = None  # built by the first row, then shared (same shapes: no recompilation; weights do not matter)
    for path in DEFAULT_ROWS:
        cfg = tiny(load_config(path), world, bridge.client.addresses[0])
        policy = policy if policy is not None else build_policy(cfg.model, seed=0)
        m = _grpo_one_step(cfg, bridge, scorer, policy, tok)
        w = cfg.grpo.rewards
        expected = (
            w.format * m["reward/format"]
            + w.alpha_k * m["reward/keyframe"]
            + w.alpha_a * m["reward/alignment"]
            + w.alpha_g * m["reward/grounding"]
        )
        assert m["reward/total"] == pytest.approx(expected, abs=1e-5), path
        assert os.path.exists(os.path.join(cfg.run.out_dir, "metrics.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("path", OTHERS, ids=spec_id)
def test_experiment_runs_one_step(path, world, bridge):
    from tests.crossomni.fixtures import length_judge

    cfg = tiny(load_config(path), world, bridge.client.addresses[0])
    if cfg.data.task == "qa":
        from omnir1_jax.tasks.crossomni_judge import make_judge

        stage = "sft" if "sft" in cfg.name else "grpo"
        out = _one_step_run(cfg, stage, make_judge(length_judge))
        key = "sft_final_loss" if stage == "sft" else "grpo_last"
        assert out[key] is not None
        val = out[key] if stage == "sft" else out[key]["loss"]
        assert np.isfinite(val)
        return
    from omnir1_jax.policy import make_scorer

    m = _grpo_one_step(cfg, bridge, make_scorer(False, 1.0))
    assert np.isfinite(m["loss"]) and np.isfinite(m["reward/total"])


def _one_step_run(cfg, stage: str, judge):
    """``omnir1_jax.train.run`` (the one learner) for one step of ``stage`` (``sft`` or ``grpo``)."""
    from omnir1_jax.train import run

    cfg = dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, steps=1), run=dataclasses.replace(cfg.run, steps=1))
    return run(cfg, do_eval=False, stages=(stage,), judge=judge)


def _tiny_judge_dir(path: str) -> str:
    """A tiny random Qwen2 causal LM + the tiny tokenizer saved in ``path`` (the judge model under test)."""
    import torch
    import transformers

    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer, special_token_ids

    tok, ids = build_tiny_tokenizer(), special_token_ids()
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class _Recording:
    """Passes every batched call to ``judge`` and keeps (prompts, replies), so the test can re-check them."""

    batched = True

    def __init__(self, judge):
        self.judge, self.calls = judge, []

    def __call__(self, prompts):
        replies = self.judge(prompts)
        self.calls.append((list(prompts), list(replies)))
        return replies


@pytest.mark.slow
def test_crossomni_grpo_step_with_the_judge_served_by_a_bridge(world, tmp_path):
    """The CrossOmni judge as a tiny random Qwen2 served by a bridge subprocess (``--judge hf:DIR``): the QA
    rewards of completions with a rationale get exactly the scores of the same model decoding in this process,
    and one GRPO step of ``crossomni_grpo_3b`` runs with that judge (any judge call it makes is re-checked)."""
    from omnir1_jax.crossomni.batches import read_split
    from omnir1_jax.crossomni.rewards import qa_rewards
    from omnir1_jax.tasks.crossomni_judge import make_judge
    from sam2_bridge.server.judge import HFJudge

    judge_dir = _tiny_judge_dir(str(tmp_path / "judge"))
    local = HFJudge(judge_dir)
    cfg = tiny(
        load_config(os.path.join(ROOT, "experiments", "crossomni.py:grpo_3b")), world, "ipc://unused-bridge.sock"
    )
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out_dir=str(tmp_path / "run")))
    records = read_split(cfg.data, "train")[:2]
    completions = [
        "<think>the man in red is Sheldon, from Texas</think>\nB",
        "no rationale: A",
        "<think>the blonde woman stands left</think> C",
        "<think> </think> D",
    ]
    recs = [records[0], records[0], records[1], records[1]]
    judge = make_judge(f"hf:{judge_dir}", run_dir=str(tmp_path / "bridge"), max_new_tokens=4, timeout_s=300)
    served = _Recording(judge)
    try:
        total, comps, metrics = qa_rewards(completions, recs, served)
        want_total, want_comps, want_metrics = qa_rewards(
            completions, recs, _Recording(lambda prompts: local.generate(prompts, 4)[0])
        )
        out = _one_step_run(cfg, "grpo", served)
    finally:
        judge.close()
    assert [len(p) for p, _ in served.calls[:2]] == [2, 2]  # two completions have a rationale, one request per term
    np.testing.assert_array_equal(total, want_total)
    for k in comps:
        np.testing.assert_array_equal(comps[k], want_comps[k])
    assert metrics == want_metrics and metrics["consistency/judge_errors"] == 0
    m = out["grpo_last"]
    assert (
        np.isfinite(m["loss"]) and m["judge/consistency/judge_errors"] == 0 and m["judge/coherence/judge_errors"] == 0
    )
    for prompts, replies in served.calls:
        assert replies == local.generate(prompts, 4)[0]
