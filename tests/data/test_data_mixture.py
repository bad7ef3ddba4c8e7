"""The training mixture (``data.dataset = "mixture"``): ReVOS + MeViS + synthetic fixtures under one root, every
record when no video count is set, a uniform seeded draw of whole videos otherwise, typed errors."""

import collections
import dataclasses
import os

import numpy as np
import pytest

from omnir1_jax import data
from omnir1_jax.config import ConfigError, DataSpec, apply_overrides, load_config
from omnir1_jax.runtime.records import pipeline_config, read_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def mix_root(tmp_path_factory, revos_tree, mevis_tree):
    from omnir1_jax.data.synthetic import writer

    root = tmp_path_factory.mktemp("mix")
    os.symlink(revos_tree[0], root / "revos")
    os.symlink(mevis_tree[0], root / "mevis")
    writer.write_vos(str(root / "syn"), 6, seed=1, height=56, width=84, min_frames=4, max_frames=4)
    os.symlink(root / "syn", root / "syn_again")
    return str(root)


SOURCES = (("revos", "revos"), ("mevis", "mevis"), ("synthetic", "syn"))


def _spec(root, **kw):
    return DataSpec(dataset="mixture", root=root, mixture=SOURCES, **kw)


def _separate(root):
    return (
        data.read_revos(os.path.join(root, "revos"), "train")
        + data.read_mevis(os.path.join(root, "mevis"), "train")
        + data.read_revos(os.path.join(root, "syn"), "train", dataset="synthetic")
    )


def _synthetic_videos(root):
    return len({r.video_id for r in data.read_revos(os.path.join(root, "syn"), "train", dataset="synthetic")})


def test_all_videos_is_every_record_of_every_source_in_order(mix_root):
    got = read_records(_spec(mix_root))
    want = _separate(mix_root)
    assert [r.key for r in got] == [r.key for r in want]
    assert collections.Counter(r.dataset for r in got) == {
        "revos": 3,
        "mevis": 1,
        "synthetic": sum(r.dataset == "synthetic" for r in want),
    }
    assert all(p.startswith(mix_root + os.sep) for r in got for p in r.frame_paths)  # the bridge's one data root
    assert pipeline_config(_spec(mix_root), train=True, seed=0).task == "vos"


def test_a_drawn_mixture_keeps_whole_videos_and_is_deterministic(mix_root):
    by_video = collections.defaultdict(set)
    for r in _separate(mix_root):
        by_video[(r.dataset, r.video_id)].add(r.key)
    assert len(by_video) == 3 + _synthetic_videos(mix_root)
    draws = []
    for seed in (0, 0, 1, 2, 3):
        recs = read_records(_spec(mix_root, mixture_videos=4, mixture_seed=seed))
        videos = {(r.dataset, r.video_id) for r in recs}
        assert len(videos) == 4
        assert {r.key for r in recs} == set().union(*(by_video[v] for v in videos))  # every expression kept
        draws.append(tuple(r.key for r in recs))
    assert draws[0] == draws[1] and len(set(draws[1:])) > 1


def test_the_draw_is_uniform_over_the_union_of_videos(mix_root):
    """Each of the V videos (3 ReVOS / MeViS + K synthetic) is in a draw of 4 with probability 4/V; each source's
    share is proportional to its size (K/V of the videos are synthetic). Checked over 300 seeds at 5 standard
    deviations."""
    k = _synthetic_videos(mix_root)
    seeds, n, total = 300, 4, 3 + k
    hits = collections.Counter()
    syn = []
    for seed in range(seeds):
        videos = {(r.dataset, r.video_id) for r in read_records(_spec(mix_root, mixture_videos=n, mixture_seed=seed))}
        hits.update(videos)
        syn.append(sum(d == "synthetic" for d, _ in videos))
    p = n / total
    assert len(hits) == total
    for v, c in hits.items():
        assert abs(c / seeds - p) < 5 * np.sqrt(p * (1 - p) / seeds), v
    # hypergeometric count of the K synthetic videos among V in draws of n
    mean, var = n * k / total, n * (k / total) * (3 / total) * (total - n) / (total - 1)
    assert abs(np.mean(syn) - mean) < 5 * np.sqrt(var / seeds)


def test_mixture_errors_name_the_problem(mix_root):
    v = 3 + _synthetic_videos(mix_root)
    with pytest.raises(
        ConfigError,
        match=rf"mixture_videos={v + 1} but the sources hold {v} 'train' videos "
        rf"\(revos: 2, mevis: 1, syn: {v - 3}\)",
    ):
        read_records(_spec(mix_root, mixture_videos=v + 1))
    dup = DataSpec(dataset="mixture", root=mix_root, mixture=(("synthetic", "syn"), ("synthetic", "syn_again")))
    with pytest.raises(ConfigError, match="is in both 'syn' and 'syn_again'"):
        read_records(dup)
    with pytest.raises(ConfigError, match="relative path inside data.root"):
        DataSpec(dataset="mixture", root=mix_root, mixture=(("revos", "../revos"),))
    with pytest.raises(ConfigError, match="cannot be mixed"):
        DataSpec(dataset="mixture", root=mix_root, mixture=(("refavs", "refavs"),))
    with pytest.raises(ConfigError, match="needs data.mixture"):
        DataSpec(dataset="mixture", root=mix_root)


def test_main_vos_experiment_trains_on_the_mixture_and_overrides_reach_it(mix_root):
    cfg = load_config(os.path.join(ROOT, "experiments", "omni_r1_7b_vos.py"))
    assert cfg.data.dataset == "mixture" and {d for d, _ in cfg.data.mixture} == {"revos", "mevis"}
    assert cfg.data.mixture_videos == 2600
    cfg = apply_overrides(cfg, [f"data.root={mix_root!r}", f"data.mixture={SOURCES!r}", "data.mixture_videos=0"])
    assert [r.key for r in read_records(cfg.data)] == [r.key for r in _separate(mix_root)]
    evaluated = dataclasses.replace(cfg.data, dataset="revos", root=os.path.join(mix_root, "revos"))
    assert [r.key for r in read_records(evaluated)] == [r.key for r in data.read_revos(evaluated.root, "train")]
