"""The synthetic world's knobs (palette, shapes, object count, expression templates) and their run-time checks."""

import json
import os

import pytest

from omnir1_jax.config import ConfigError, DataSpec
from omnir1_jax.data import prompts, readers
from omnir1_jax.data.synthetic import world, writer
from omnir1_jax.runtime.world import ensure_synthetic


def test_restricted_world_has_only_the_asked_colours_shapes_counts_and_templates(tmp_path):
    root = writer.write_vos(
        str(tmp_path / "w"),
        6,
        seed=2,
        height=40,
        width=64,
        min_frames=5,
        max_frames=6,
        colours=("red", "blue", "green"),
        shapes=("circle",),
        objects=(2, 3),
        templates=("colour_shape",),
    )
    oracle = json.load(open(os.path.join(root, writer.ORACLE_FILE)))
    for vid in oracle["videos"].values():
        objs = vid["objects"]
        assert 2 <= len(objs) <= 3
        assert {o["description"].split()[0] for o in objs} <= {"red", "blue", "green"}
        assert {o["description"].split()[1] for o in objs} == {"circle"}
        assert {e["template"] for e in vid["expressions"].values()} <= {"colour_shape"}
    recs = readers.read_revos(root, "train") + readers.read_revos(root, "valid")
    assert recs and all(r.expression.startswith("the ") and r.expression.endswith(" circle") for r in recs)
    assert oracle["params"]["colours"] == ["red", "blue", "green"] and oracle["params"]["objects"] == [2, 3]


def test_default_knobs_draw_the_same_world_as_the_explicit_full_palette(tmp_path):
    a = writer.write_vos(str(tmp_path / "a"), 2, seed=5, height=40, width=64, min_frames=5, max_frames=6)
    b = writer.write_vos(
        str(tmp_path / "b"),
        2,
        seed=5,
        height=40,
        width=64,
        min_frames=5,
        max_frames=6,
        colours=tuple(world.PALETTE),
        shapes=world.SHAPES,
        objects=(3, 5),
    )
    for name in ("meta_expressions_train_.json", "meta_expressions_valid_.json", "mask_dict.json"):
        assert open(os.path.join(a, name)).read() == open(os.path.join(b, name)).read()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(colours=("red", "mauve")), "mauve"),
        (dict(shapes=("hexagon",)), "hexagon"),
        (dict(colours=("red", "blue"), objects=(2, 3)), "objects"),
        (dict(templates=("colour_shape", "biggest")), "biggest"),
    ],
)
def test_bad_knobs_are_named(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        writer.write_vos(str(tmp_path / "x"), 1, height=40, width=64, min_frames=5, max_frames=5, **kwargs)
    assert not os.path.exists(tmp_path / "x")


def test_ensure_synthetic_refuses_a_world_generated_with_other_parameters(tmp_path):
    spec = DataSpec(
        root=str(tmp_path / "w"),
        synthetic_videos=5,
        synthetic_size=(40, 64),
        synthetic_colours=("red", "blue", "green"),
        synthetic_objects=(2, 3),
    )
    ensure_synthetic(spec, min_frames=5, max_frames=6)
    ensure_synthetic(spec, min_frames=5, max_frames=6)  # same parameters: reused
    other = DataSpec(root=spec.root, synthetic_videos=5, synthetic_size=(40, 64), synthetic_objects=(2, 3))
    with pytest.raises(ConfigError, match="colours"):
        ensure_synthetic(other, min_frames=5, max_frames=6)


def test_short_prompt_ends_with_the_expression_and_uses_the_figure3_words():
    p = prompts.vos_prompt_short("the red circle", 8)
    assert p.endswith("Reference instruction: the red circle") and "4 seconds video" in p
    assert p.count("the red circle") == 2 and "<answer></answer>" in p
    with pytest.raises(ValueError, match="style"):
        from omnir1_jax.data.transforms import BuildPrompt

        BuildPrompt(style="long")


def test_minimal_prompt_is_one_sentence_ending_with_the_expression():
    p = prompts.vos_prompt_minimal("the red circle", 8)
    assert p == "Select about 4 moments of the 4 seconds video showing the red circle"
    assert prompts.vos_prompt_minimal("the red circle", 8, num_keyframes=2).startswith("Select exactly 2 moments of")
    from omnir1_jax.data.transforms import BuildPrompt

    assert BuildPrompt(style="minimal").style == "minimal"
    with pytest.raises(ConfigError, match="data.prompt must be 'paper', 'short' or 'minimal', got 'tiny'"):
        DataSpec(prompt="tiny")


def test_too_short_clips_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="min_frames=3"):
        writer.write_vos(str(tmp_path / "x"), 1, height=40, width=64, min_frames=3, max_frames=5)
