"""SFT warm-up targets of the CPU demo: the format only — never the target, and (optionally) prompts without the
referring expression."""

import os

import numpy as np
import pytest

from omnir1_jax.config import DataSpec, ExperimentConfig, ModelSpec, RunSpec, SFTSpec
from omnir1_jax.data.synthetic import writer
from omnir1_jax.policy import build_policy, build_tokenizer
from omnir1_jax.rewards import parse_answer
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks.synthetic_targets import load_oracle, synthetic_target


def _sft_learner(cfg, recs):
    """The one learner's SFT stage on the VOS task (what ``python -m omnir1_jax.sft`` runs)."""
    from omnir1_jax.learner import Learner, sft_stage
    from omnir1_jax.tasks import make_task

    tok = build_tokenizer(cfg.model)
    return Learner(
        cfg, make_task(cfg, tok), sft_stage(cfg), policy=build_policy(cfg.model), tokenizer=tok, records=recs
    )


def data_spec(root, **kw):
    return DataSpec(
        root=root,
        synthetic_colours=("red", "blue", "green", "yellow"),
        synthetic_objects=(2, 3),
        synthetic_templates=("colour_shape",),
        **kw,
    )


def _tiny_sft_config(root, out: str, sft: SFTSpec) -> ExperimentConfig:
    """A one-layer policy's SFT on the test world: 2-prompt batches of 4-frame clips, the short prompt."""
    return ExperimentConfig(
        model=ModelSpec(overrides=(("vocab_size", 1024), ("hidden_size", 32), ("num_layers", 1))),
        data=data_spec(
            root,
            batch_size=2,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
            prompt="short",
            pad_to_multiple=64,
        ),
        sft=sft,
        run=RunSpec(out_dir=os.path.join(root, "..", out)),
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return writer.write_vos(
        str(tmp_path_factory.mktemp("sft") / "w"),
        5,
        seed=4,
        height=40,
        width=64,
        min_frames=6,
        max_frames=6,
        colours=("red", "blue", "green", "yellow"),
        objects=(2, 3),
        templates=("colour_shape",),
    )


def test_format_only_targets_parse_and_never_name_the_target(root):
    oracle = load_oracle(root)
    recs = read_records(data_spec(root), "train")
    rng = np.random.default_rng(0)
    for rec in recs:
        video = oracle[rec.video_id]
        for _ in range(5):
            text = synthetic_target(video, list(range(6)), rec.obj_ids, rng, think="{description} is visible here")
            ans = parse_answer(text, 6)
            assert ans.valid and 2 <= len(ans.keyframes) <= 4, text
            desc = set(ans.descriptions)
            assert len(desc) == 1
            target = {"the " + o["description"] for o in video["objects"] if o["obj_id"] in rec.obj_ids}
            present = {"the " + o["description"] for o in video["objects"] if o["obj_id"] not in rec.obj_ids}
            assert desc.isdisjoint(target) and desc <= present
            assert text.startswith(f"<think>{next(iter(desc))} is visible here</think>")
        oracle_text = synthetic_target(video, list(range(6)), rec.obj_ids, rng, mode="oracle")
        assert set(parse_answer(oracle_text, 6).descriptions) == target


def test_instruction_replaces_the_expression_in_sft_prompts(root):
    cfg = _tiny_sft_config(root, "run", SFTSpec(steps=1, lr=1e-3, batch_size=4, instruction="the object"))
    tok = build_tokenizer(cfg.model)
    recs = read_records(cfg.data, "train")
    sft = _sft_learner(cfg, recs)
    batch = next(sft.data_iter)
    texts = tok.batch_decode(np.asarray(batch["model_inputs"]["input_ids"]))
    expressions = {r.expression for r in recs}
    for t in texts:
        assert "Reference instruction: the object" in t
        assert not any(e in t for e in expressions), t


def test_decoy_instructions_are_drawn_at_random_and_reach_the_think(root):
    from omnir1_jax.tasks.synthetic_targets import decoy_instructions
    from sam2_bridge.wire.constants import PALETTE, SHAPES

    recs = read_records(data_spec(root), "train")
    many = recs * 40
    decoys = decoy_instructions(many, "the {colour} {shape}", seed=3)
    assert [d.expression for d in decoys] == [
        d.expression for d in decoy_instructions(many, "the {colour} {shape}", seed=3)
    ]
    assert [(d.video_id, d.exp_id, d.obj_ids) for d in decoys] == [(r.video_id, r.exp_id, r.obj_ids) for r in many]
    colours = {d.expression.split()[1] for d in decoys}
    shapes = {d.expression.split()[2] for d in decoys}
    assert colours == set(PALETTE) and shapes == set(SHAPES)  # by default every colour / shape
    narrow = decoy_instructions(many, "the {colour} {shape}", seed=3, colours=("red", "blue"), shapes=("circle",))
    assert {d.expression for d in narrow} == {"the red circle", "the blue circle"}

    cfg = _tiny_sft_config(
        root,
        "run_decoy",
        SFTSpec(
            steps=1,
            lr=1e-3,
            batch_size=4,
            instruction="the {colour} {shape}",
            think="looking for {instruction}; {description} is visible here",
        ),
    )
    tok = build_tokenizer(cfg.model)
    sft = _sft_learner(cfg, recs)
    batch = next(sft.data_iter)
    prompts = tok.batch_decode(np.asarray(batch["model_inputs"]["input_ids"]))
    for b, (prompt, target) in enumerate(zip(prompts, sft.task.sft_targets(batch))):
        key = (batch["video_id"][b], batch["exp_id"][b])
        shown = sft.task.shown[key]
        assert f"Reference instruction: {shown}<|im_end|>" in prompt  # the decoy, not the expression
        assert target.startswith(f"<think>looking for {shown}; the ")  # restated in the think
        video = load_oracle(root)[key[0]]
        target_desc = {
            "the " + o["description"] for o in video["objects"] if o["obj_id"] in sft.task.sft_records[key].obj_ids
        }
        assert set(parse_answer(target, 4).descriptions).isdisjoint(target_desc)  # still never the target
    m = sft.update(sft.supervised(batch))
    assert np.isfinite(m["loss"]) and m["loss"] > 0


def test_mixed_and_any_object_targets_name_the_target_at_their_rate(root):
    """Each mode names the target at its rate, and a think's ``{choice}`` says whether the answer names it."""
    oracle = load_oracle(root)
    recs = read_records(data_spec(root), "train")
    rng = np.random.default_rng(1)
    counts = {("mixed", 0.0): [0, 0], ("mixed", 0.25): [0, 0], ("mixed", 1.0): [0, 0], ("any_object", 0.0): [0, 0]}
    for rec in recs:
        video = oracle[rec.video_id]
        target = {"the " + o["description"] for o in video["objects"] if o["obj_id"] in rec.obj_ids}
        present = {"the " + o["description"] for o in video["objects"]}
        for (mode, rate), c in counts.items():
            for _ in range(200):
                text = synthetic_target(
                    video,
                    list(range(6)),
                    rec.obj_ids,
                    rng,
                    mode=mode,
                    target_rate=rate,
                    keyframes=(1, 1),
                    think="{description}; {choice}",
                )
                ans = parse_answer(text, 6)
                assert ans.valid and len(ans.keyframes) == 1, text
                (desc,) = set(ans.descriptions)
                # {choice}: whether this answer names the referred object, in the think
                said = "naming it" if desc in target else "naming another object"
                assert desc in present and text.startswith(f"<think>{desc}; {said}</think>")
                c[0] += desc in target
                c[1] += 1
    frac = {k: a / n for k, (a, n) in counts.items()}
    assert frac[("mixed", 0.0)] == 0.0 and frac[("mixed", 1.0)] == 1.0
    # binomial over >= 1,000 draws: 0.25 +- 4 standard deviations (0.014 each)
    assert abs(frac[("mixed", 0.25)] - 0.25) < 0.056
    # any_object: uniform over the 2-3 objects present, so the target is named a third to a half of the time
    assert 0.3 < frac[("any_object", 0.0)] < 0.55


def test_think_weight_weights_exactly_the_think_tokens(root):
    """``sft.think_weight``: the learner's targets weight the tokens of the restated instruction (decoded, they are
    the ``<think>`` text) and its NLL update is the weighted token mean of the policy's log-probs (numpy)."""
    from omnir1_jax.rl.update import score

    cfg = _tiny_sft_config(
        root,
        "run_think_weight",
        SFTSpec(steps=1, lr=1e-3, batch_size=4, target="any_object", think="{instruction}", think_weight=4.0),
    )
    tok = build_tokenizer(cfg.model)
    sft = _sft_learner(cfg, read_records(cfg.data, "train"))
    sup = sft.supervised(next(sft.data_iter))
    ids, mask, w = (np.asarray(x) for x in (sup.completion_ids, sup.completion_mask, sup.weights))
    for r, text in enumerate(sup.texts):
        think = text[len("<think>") : text.index("</think>")]
        assert tok.decode(ids[r][w[r] == 4.0]).strip() == think and think.startswith("the ")
        assert set(np.unique(w[r][w[r] != 4.0])) == {1.0}
    lp = np.asarray(score(sft.model, sup.prompt, sup.completion_ids, sup.completion_mask, scorer=sft.scorer))
    want = -(lp * mask * w).sum() / (mask * w).sum()
    m = sft.update(sup)
    np.testing.assert_allclose(m["loss"], want, rtol=1e-5)
    with pytest.raises(Exception, match=r"sft.think_weight must be a finite number in \(0"):
        SFTSpec(think_weight=0.0)
