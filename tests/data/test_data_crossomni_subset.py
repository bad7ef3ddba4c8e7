"""The CrossOmni GRPO subset: a seeded, task-balanced draw of 982 questions."""

import collections
import json
import os

import pytest

from omnir1_jax.config import DataSpec, load_config
from omnir1_jax.crossomni.batches import read_split
from omnir1_jax.data.crossomni import TASKS, CrossOmniRecord, balanced_subset
from omnir1_jax.runtime.records import resolve_steps


def _records(counts):
    out = []
    for task, n in zip(TASKS, counts):
        out += [
            CrossOmniRecord(
                id=f"{task}#{i}",
                video="v.mp4",
                audio=None,
                biography="b",
                question="q",
                options=(("A", "a"), ("B", "b")),
                answer="A",
                task=task,
            )
            for i in range(n)
        ]
    return out


def test_982_over_nine_tasks_by_hand():
    recs = _records([200] * 9)
    sub = balanced_subset(recs, 982, seed=0)
    counts = collections.Counter(r.task for r in sub)
    # 982 = 9 * 109 + 1: 109 per task, the first task of TASKS one more
    assert len(sub) == 982 and counts[TASKS[0]] == 110 and all(counts[t] == 109 for t in TASKS[1:])
    assert len({r.id for r in sub}) == 982
    order = {r.id: i for i, r in enumerate(recs)}
    assert [order[r.id] for r in sub] == sorted(order[r.id] for r in sub)  # input order kept
    assert balanced_subset(recs, 982, seed=0) == sub and balanced_subset(recs, 982, seed=1) != sub


def test_a_short_task_gives_all_and_the_rest_is_spread():
    # the last task has 50: level 1 gives 109 to eight tasks and 50 to it (left 60), level 2 gives 7 each
    # (left 4), then one more to the first four tasks: 117 x 4, 116 x 4, 50
    sub = balanced_subset(_records([200] * 8 + [50]), 982, seed=3)
    counts = collections.Counter(r.task for r in sub)
    assert [counts[t] for t in TASKS] == [117] * 4 + [116] * 4 + [50]
    assert balanced_subset(_records([2] * 9), 982) == _records([2] * 9)  # not enough data: everything
    with pytest.raises(ValueError, match="size"):
        balanced_subset(_records([2] * 9), -1)


def test_read_split_subsets_only_the_training_split(tmp_path):
    rows = [
        {
            "id": f"q{i}",
            "video": "v.mp4",
            "biography": "b",
            "question": "q",
            "options": ["a", "b"],
            "answer": "A",
            "task": TASKS[i % 9],
        }
        for i in range(36)
    ]  # 4 per task
    for split in ("train", "test"):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = DataSpec(dataset="crossomni", root=str(tmp_path), split="train", task="qa", balanced_subset=18)
    train = read_split(spec)
    assert len(train) == 18 and set(collections.Counter(r.task for r in train).values()) == {2}
    assert len(read_split(spec, "test")) == 36


def test_grpo_experiments_use_the_subset():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for size in ("3b", "7b"):
        cfg = load_config(os.path.join(root, "experiments", f"crossomni.py:grpo_{size}"))
        assert (cfg.data.balanced_subset, cfg.run.steps, cfg.data.batch_size) == (982, 0, 16)
        # one epoch over the subset: ceil(982 / 16) = 62 steps (the number the files used to hard-code)

        assert resolve_steps(cfg, balanced_subset(_records([200] * 9), 982)) == 62
