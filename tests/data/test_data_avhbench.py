"""AVHBench: the reader on a tiny release-layout fixture, its typed errors, yes/no scoring against hand-counted
numbers, and the resumable evaluation driver (the model path end to end under ``-m slow``)."""

import json
import os

import numpy as np
import pytest

from omnir1_jax.data.avhbench import CAPTION_TASK, JUDGE_TASKS, read_avhbench
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.evaluation.metrics.qa import YesNoAccumulator, parse_yes_no
from tests.train._tiny import TINY_MODEL

AV, VA, M = JUDGE_TASKS
QUESTIONS = {
    "00191": [
        {"video_id": "00191", "task": VA, "text": "Is the sleeping man making sound in the audio?", "label": "Yes"},
        {"video_id": "00191", "task": VA, "text": "Is the couch making sound in the audio?", "label": "No"},
        {"video_id": "00191", "task": AV, "text": "Is the sleeping man visible in the video?", "label": "yes"},
        {
            "video_id": "00191",
            "task": M,
            "text": "Are the contexts of audio and visual content matching?",
            "label": "Yes",
        },
        {
            "video_id": "00191",
            "task": CAPTION_TASK,
            "text": "Describe what you see and hear.",
            "label": "A man sleeps while someone walks.",
        },
    ],
    "00191_swap": [
        {
            "video_id": "00191_swap",
            "task": M,
            "text": "Are the contexts of audio and visual content matching?",
            "label": "No",
        },
        {"video_id": "00191_swap", "task": AV, "text": "Is a dog visible in the video?", "label": "NO "},
    ],
}


def _write_release(root, questions=QUESTIONS, videos=True):
    os.makedirs(os.path.join(root, "json"), exist_ok=True)
    os.makedirs(os.path.join(root, "video"), exist_ok=True)
    for vid, entries in questions.items():
        with open(os.path.join(root, "json", f"{vid}.json"), "w") as f:
            json.dump(entries, f)
        if videos:
            open(os.path.join(root, "video", f"{vid}.mp4"), "wb").close()
    return str(root)


def test_reader_keeps_the_judge_subset_with_normalised_labels(tmp_path):
    root = _write_release(tmp_path)
    recs = read_avhbench(root)
    assert [(r.id, r.task, r.answer) for r in recs] == [
        ("00191/0", VA, "Yes"),
        ("00191/1", VA, "No"),
        ("00191/2", AV, "Yes"),
        ("00191/3", M, "Yes"),
        ("00191_swap/0", M, "No"),
        ("00191_swap/1", AV, "No"),
    ]
    assert recs[0].question == "Is the sleeping man making sound in the audio?" and recs[0].audio is None
    assert recs[4].video == os.path.join(root, "video", "00191_swap.mp4") and all(r.judge for r in recs)
    caps = read_avhbench(root, tasks=(CAPTION_TASK,))
    assert [(r.id, r.answer, r.judge) for r in caps] == [("00191/4", "A man sleeps while someone walks.", False)]


def test_reader_takes_one_json_file_too(tmp_path):
    os.makedirs(tmp_path / "video")
    for vid in QUESTIONS:
        open(tmp_path / "video" / f"{vid}.mp4", "wb").close()
    path = tmp_path / "QA.json"
    path.write_text(json.dumps(QUESTIONS["00191"] + QUESTIONS["00191_swap"]))
    recs = read_avhbench(str(path))
    assert [r.id for r in recs] == ["00191/0", "00191/1", "00191/2", "00191/3", "00191_swap/5", "00191_swap/6"]
    assert recs[-1].video == os.path.join(str(tmp_path), "video", "00191_swap.mp4")


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"video_id": "v1", "task": AV, "text": "q?"}, "field 'label'"),
        ({"video_id": "v1", "task": AV, "text": "q?", "label": "maybe"}, "label 'maybe'"),
        ({"video_id": "v1", "task": "Audio Counting", "text": "q?", "label": "Yes"}, "task 'Audio Counting'"),
        ({"video_id": "../v1", "task": AV, "text": "q?", "label": "Yes"}, "leaves the video folder"),
        (["not", "an", "object"], "expected an object"),
    ],
)
def test_malformed_entries_name_file_and_record(tmp_path, entry, message):
    good = {"video_id": "v1", "task": M, "text": "ok?", "label": "No"}
    root = _write_release(tmp_path, {"v1": [good, entry]})
    with pytest.raises(DataFormatError, match=message) as e:
        read_avhbench(root)
    assert e.value.path == os.path.join(root, "json", "v1.json") and e.value.record == "avhbench v1[1]"


def test_file_level_errors(tmp_path):
    root = _write_release(tmp_path / "a", videos=False)
    with pytest.raises(DataFormatError, match="not found") as e:
        read_avhbench(root)
    assert e.value.path.endswith("video/00191.mp4") and e.value.record == "avhbench 00191[0]"
    assert len(read_avhbench(root, check_videos=False)) == 6
    bad = _write_release(tmp_path / "b", {"x": []})
    with open(os.path.join(bad, "json", "x.json"), "w") as f:
        f.write('{"video_id": ')
    with pytest.raises(DataFormatError, match="not valid JSON"):
        read_avhbench(bad)
    with open(os.path.join(bad, "json", "x.json"), "w") as f:
        json.dump({"video_id": "x"}, f)
    with pytest.raises(DataFormatError, match="expected a JSON list"):
        read_avhbench(bad)
    with pytest.raises(DataFormatError, match="no json/"):
        read_avhbench(str(tmp_path / "b" / "video"))
    with pytest.raises(DataFormatError, match="no AVHBench"):
        read_avhbench(str(tmp_path / "missing"))
    entry = {"video_id": "v", "task": M, "text": "q", "label": "Yes"}
    dup = _write_release(tmp_path / "c", {"a": [entry], "b": [entry]})  # two files list the same question
    open(os.path.join(dup, "video", "v.mp4"), "wb").close()
    with pytest.raises(DataFormatError, match="duplicate id 'v/0'") as e:
        read_avhbench(dup)
    assert e.value.path.endswith("json/b.json")


def test_parse_yes_no():
    assert parse_yes_no("<think>no idea... yes maybe</think><answer>Yes, it is.</answer>") == "Yes"
    assert parse_yes_no("<think>the dog is there, yes</think> NO.") == "No"
    assert parse_yes_no("no") == "No" and parse_yes_no("Yesterday nothing") is None
    assert parse_yes_no("<answer>unsure</answer> yes") is None and parse_yes_no(None) is None


def test_yes_no_accumulator_against_hand_counts():
    acc = YesNoAccumulator()
    # task AV: gold Y Y N N, predicted Y N Y None -> TP 1, FP 1, FN 1; 1 of 4 correct
    for i, (p, g) in enumerate([("Yes", "Yes"), ("No", "Yes"), ("Yes", "No"), (None, "No")]):
        acc.add(f"a{i}", AV, p, g)
    # task M: gold Y N N, predicted Y N N -> all correct, TP 1, FP 0
    for i, (p, g) in enumerate([("Yes", "Yes"), ("No", "No"), ("No", "No")]):
        acc.add(f"m{i}", M, p, g)
    s = acc.summary()
    assert list(s) == [AV, M, "overall"]
    assert s[AV] == pytest.approx(
        {"accuracy": 0.25, "correct": 1, "count": 4, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5}
    )
    assert s[M] == pytest.approx(
        {"accuracy": 1.0, "correct": 3, "count": 3, "precision": 1.0, "recall": 1.0, "f1": 1.0, "yes_ratio": 1 / 3}
    )
    # pooled: TP 2, predicted Yes 3, gold Yes 3 -> P = R = F1 = 2/3; 4 of 7 correct; 3 of 7 said Yes
    assert s["overall"] == pytest.approx(
        {
            "accuracy": 4 / 7,
            "correct": 4,
            "count": 7,
            "precision": 2 / 3,
            "recall": 2 / 3,
            "f1": 2 / 3,
            "yes_ratio": 3 / 7,
        }
    )
    assert f"| overall | {100 * 4 / 7:.1f} |" in acc.summary_table()
    with pytest.raises(ValueError, match="already added"):
        acc.add("a0", AV, "Yes", "Yes")
    with pytest.raises(ValueError, match="must be Yes or No"):
        acc.add("z", AV, "Yes", "yes")


def test_paper_number_is_a_plain_pooled_accuracy():
    """Omni-R1 Table 6: 3,261 of 5,302 JUDGE questions = 61.5 %."""
    acc = YesNoAccumulator()
    for i in range(5302):
        acc.add(str(i), JUDGE_TASKS[i % 3], "Yes" if i < 3261 else "No", "Yes")
    assert round(100 * acc.summary()["overall"]["accuracy"], 1) == 61.5


def test_evaluate_yes_no_is_resumable_and_matches_the_accumulator(tmp_path):
    from omnir1_jax.evaluate import evaluate_yes_no

    recs = read_avhbench(_write_release(tmp_path / "data"))
    replies = {
        r.id: (f"<think>...</think><answer>{'No' if i % 3 == 0 else 'Yes'}</answer>" if i != 4 else "hmm")
        for i, r in enumerate(recs)
    }
    answer = lambda rs: ((r, replies[r.id]) for r in rs)
    full = evaluate_yes_no(recs, answer, str(tmp_path / "full"), progress=False)
    acc = YesNoAccumulator()
    for r in recs:
        acc.add(r.id, r.task, parse_yes_no(replies[r.id]), r.answer)
    assert full["table"] == acc.summary() and full["done"] == len(recs) == 6
    part = evaluate_yes_no(recs, answer, str(tmp_path / "part"), max_items=2, progress=False)
    assert part["done"] == 2
    resumed = evaluate_yes_no(recs, answer, str(tmp_path / "part"), progress=False)
    assert resumed["table"] == full["table"]
    with open(tmp_path / "full" / "summary.json") as f:
        assert json.load(f)["table"]["overall"]["count"] == 6


@pytest.mark.slow
def test_evaluate_avhbench_with_the_tiny_policy_end_to_end(tmp_path):
    """The driver on a real (tiny) clip with audio: the tiny random policy answers every question and each
    row's prediction is the parse of its logged answer."""
    import dataclasses

    from omnir1_jax.config import DataSpec, ExperimentConfig, ModelSpec
    from omnir1_jax.crossomni.media import write_video
    from omnir1_jax.evaluate import evaluate

    root = _write_release(tmp_path / "avh", videos=False)
    rng = np.random.default_rng(0)
    for vid in QUESTIONS:
        write_video(
            os.path.join(root, "video", f"{vid}.mp4"),
            rng.integers(0, 255, (4, 56, 56, 3), np.uint8),
            fps=2.0,
            audio=(0.1 * rng.standard_normal(16000)).astype(np.float32),
        )
    cfg = ExperimentConfig(
        name="avh",
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="avhbench",
            root=root,
            task="qa",
            batch_size=3,
            min_frames=2,
            max_frames=2,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
    )
    cfg = dataclasses.replace(
        cfg,
        grpo=dataclasses.replace(cfg.grpo, max_new_tokens=4),
        run=dataclasses.replace(cfg.run, out_dir=str(tmp_path / "run")),
    )
    out = evaluate(cfg, "judge", progress=False)
    assert out["done"] == out["total"] == 6
    with open(os.path.join(cfg.run.out_dir, "eval", "avhbench_judge", "results.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["id"] for r in rows] == [r.id for r in read_avhbench(root)]
    assert all(r["predicted"] == parse_yes_no(r["answer"]) for r in rows)
