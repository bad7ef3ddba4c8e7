"""Multiple-choice scoring: letter extraction on hand-made answers, accuracy per task / group / modality pair
against hand counts, the paper's rows, and the resumable evaluator (an interrupted run resumes to the same
summary)."""

import json
import os

import pytest

from omnir1_jax.data.mcq import MCQRecord
from omnir1_jax.evaluation.metrics.qa import QAAccumulator, extract_letter


@pytest.mark.parametrize(
    "text, letters, options, want",
    [
        ("B", "ABCD", None, "B"),
        ("(C) the red one", "ABCD", None, "C"),
        ("The answer is D.", "ABCD", None, "D"),
        ("<think>A or B? I pick B</think>\nC", "ABCD", None, "C"),  # after the last </think>
        ("<think>...</think><answer>(E)</answer> A", "ABCDE", None, "E"),  # the <answer> body wins
        ("E", "ABCD", None, None),  # not one of this question's letters
        ("Answer: e", "ABCDE", None, None),  # letters are capitals
        ("I think it is the flute", "ABCD", ["violin", "flute", "drum", "bell"], "B"),  # no letter: its option text
        ("the violin and the flute", "ABCD", ["violin", "flute", "drum", "bell"], None),  # two texts: undecided
        ("flutes", "ABCD", ["violin", "flute", "drum", "bell"], None),  # whole words only
        ("", "ABCD", None, None),
        (None, "ABCD", None, None),
        (12, "ABCD", None, None),
        ("B", "", None, None),
        ("<answer>", "ABCD", None, None),
        ("B" * 100000, "ABCD", None, None),
        ("\x00\ufffd(A", "AB", ["x", None], "A"),
    ],
)
def test_extract_letter_never_raises(text, letters, options, want):
    assert extract_letter(text, letters, options) == want


def test_accuracy_per_task_group_and_task_mean_by_hand():
    acc = QAAccumulator()
    # task T1: 2 of 3 right; T2: 0 of 1; T3: 1 of 1. durations: short (q1, q2, q5) 2/3, long (q3, q4) 1/2.
    rows = [
        ("q1", "T1", "A", "A", "short"),
        ("q2", "T1", None, "B", "short"),
        ("q3", "T1", "C", "C", "long"),
        ("q4", "T2", "A", "D", "long"),
        ("q5", "T3", "B", "B", "short"),
    ]
    for qid, task, pred, gold, dur in rows:
        acc.add(qid, task, pred, gold, {"duration": dur})
    s = acc.summary()
    assert list(s) == ["T1", "T2", "T3", "duration=short", "duration=long", "task_mean", "overall"]
    assert (s["T1"]["correct"], s["T1"]["count"]) == (2, 3) and s["T2"]["accuracy"] == 0.0
    assert s["duration=short"]["accuracy"] == pytest.approx(2 / 3) and s["duration=long"]["accuracy"] == 0.5
    assert s["task_mean"]["accuracy"] == pytest.approx((2 / 3 + 0 + 1) / 3)  # MVBench's Avg: mean of the tasks
    assert s["overall"]["accuracy"] == pytest.approx(3 / 5)  # VideoMME's General: pooled
    assert "single" not in s and "Au-centric" not in s


def test_crossomni_modality_pairs_and_the_table7_row_by_hand():
    acc = QAAccumulator()
    # (task, predicted, gold): Au: 1/2, Au->Te 1/1, Te->Vi 0/1, Vi 1/1, Vi->Te 1/3
    rows = [
        ("Au->Au", "A", "A"),
        ("Au->Au", "B", "A"),
        ("Au->Te", "C", "C"),
        ("Te->Vi", None, "D"),
        ("Vi->Vi", "B", "B"),
        ("Vi->Te", "A", "A"),
        ("Vi->Te", "B", "A"),
        ("Vi->Te", "C", "A"),
    ]
    for i, (task, pred, gold) in enumerate(rows):
        acc.add(f"q{i}", task, pred, gold)
    s = acc.summary()
    # the paper's column order, then single / cross, then the source-centric groups
    assert list(s)[:5] == ["Au->Au", "Au->Te", "Te->Vi", "Vi->Vi", "Vi->Te"]
    assert s["single"]["accuracy"] == pytest.approx(2 / 3) and s["cross"]["accuracy"] == pytest.approx(2 / 5)
    assert s["Au-centric"]["accuracy"] == pytest.approx(2 / 3) and s["Te-centric"]["accuracy"] == 0.0
    assert s["Vi-centric"]["accuracy"] == 0.5 and s["overall"]["accuracy"] == 0.5
    row = acc.paper_row().splitlines()
    assert row[0] == "| Au | Au\u2192Te | Te\u2192Vi | Vi | Vi\u2192Te | Overall |"
    assert row[2] == "| 50.00 | 100.00 | 0.00 | 100.00 | 33.33 | 50.00 |"
    assert acc.paper_row() in acc.summary_table()
    other = QAAccumulator()
    other.add("x", "Object Recognition", "A", "A")
    with pytest.raises(ValueError, match="CrossOmni"):
        other.paper_row()


def test_table7_overall_is_pooled_not_the_mean_of_columns():
    """CrossOmni Table 7, 3B GRPO: the nine columns average 59.67 while the overall is 58.59 (module docstring):
    with unequal task sizes the pooled accuracy differs from ``task_mean``."""
    acc = QAAccumulator()
    for i in range(10):
        acc.add(f"a{i}", "Au->Au", "A", "A")  # 10 / 10
    for i in range(30):
        acc.add(f"b{i}", "Vi->Te", "A" if i < 6 else "B", "A")  # 6 / 30
    s = acc.summary()
    assert s["overall"]["accuracy"] == pytest.approx(16 / 40) and s["task_mean"]["accuracy"] == pytest.approx(0.6)


def _records(n=7):
    tasks = ["T1", "T2"]
    return [
        MCQRecord(
            id=f"q{i}",
            suite="videomme",
            task=tasks[i % 2],
            question=f"q{i}?",
            options=(("A", "red"), ("B", "green"), ("C", "blue")),
            answer="ABC"[i % 3],
            groups=(("duration", "short" if i < 4 else "long"),),
        )
        for i in range(n)
    ]


REPLIES = ["<answer>A</answer>", "B", "I would say blue", "(C)", "no idea", "<think>x</think> B", "green"]


def test_the_evaluator_resumes_to_the_same_summary(tmp_path):
    from omnir1_jax.evaluation import evaluate_qa

    recs = _records()
    replies = dict(zip([r.id for r in recs], REPLIES))
    answer = lambda rs: ((r, replies[r.id]) for r in rs)
    full = evaluate_qa(recs, answer, str(tmp_path / "full"), progress=False)
    # by hand: predicted A, B, C, C, None, B, B against gold A, B, C, A, B, C, A -> q0, q1, q2 right
    rows = [json.loads(x) for x in (tmp_path / "full" / "results.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == ["A", "B", "C", "C", None, "B", "B"]
    assert full["table"]["overall"] == {"accuracy": pytest.approx(3 / 7), "correct": 3, "count": 7}
    assert full["table"]["duration=short"]["correct"] == 3 and full["table"]["duration=long"]["correct"] == 0
    assert full["valid_answers"] == pytest.approx(6 / 7)

    class Interrupt(Exception):
        pass

    def dying(rs):
        for k, r in enumerate(rs):
            if k == 3:
                raise Interrupt
            yield r, replies[r.id]

    with pytest.raises(Interrupt):
        evaluate_qa(recs, dying, str(tmp_path / "part"), progress=False)
    with open(tmp_path / "part" / "results.jsonl", "a") as f:
        f.write('{"id": "q3", "task"')  # a torn last line, as a killed process leaves it
    seen = []

    def rest(rs):
        seen.extend(r.id for r in rs)
        yield from answer(rs)

    resumed = evaluate_qa(recs, rest, str(tmp_path / "part"), progress=False)
    assert seen == ["q3", "q4", "q5", "q6"] and resumed["table"] == full["table"]
    with open(tmp_path / "part" / "summary.json") as f:
        assert json.load(f)["table"] == json.loads(json.dumps(full["table"]))


def test_the_suite_row_has_the_papers_columns(tmp_path):
    from omnir1_jax.data.synthetic.suites import write_suites
    from omnir1_jax.evaluation.suites import evaluate_suites

    root = write_suites(str(tmp_path / "data"), ["videomme", "mvbench"])

    def oracle_but_short_wrong(rs):  # right everywhere except VideoMME's short videos
        for r in rs:
            short = dict(r.groups).get("duration") == "short"
            yield r, ("A" if r.answer != "A" else "B") if short else f"<answer>{r.answer}</answer>"

    sources = [(n, os.path.join(root, n)) for n in ("videomme", "mvbench")]
    res = evaluate_suites(sources, oracle_but_short_wrong, str(tmp_path / "out"), progress=False)
    # VideoMME: 2 of 6 questions are short -> General 4/6, Short 0; MVBench all right -> Avg 1; Average of 4/6, 1
    assert res["columns"] == pytest.approx(
        {"VideoMME General": 4 / 6, "VideoMME Short": 0.0, "MVBench Avg": 1.0, "Average": (4 / 6 + 1.0) / 2}
    )
    md = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert md[0] == "| VideoMME General | VideoMME Short | MVBench Avg | Average |"
    assert md[2] == "| 66.7 | 0.0 | 100.0 | 83.3 |"
    assert os.path.exists(tmp_path / "out" / "mvbench" / "results.jsonl")


def test_frames_in_bound_by_hand():
    from omnir1_jax.data.mcq import frames_in_bound

    # 8 frames at 2 fps are at 0, 0.5, ..., 3.5 s; [1.0, 2.0] holds frames 2, 3, 4
    assert frames_in_bound(8, 2.0, (1.0, 2.0)) == [2, 3, 4]
    assert frames_in_bound(6, 3.0, (0.0, 1.0)) == [0, 1, 2, 3]  # MVBench's 3 fps frame folders
    assert frames_in_bound(4, 2.0, (9.0, 12.0)) == [0, 1, 2, 3]  # past the clip: the whole clip
    with pytest.raises(ValueError, match="frame rate"):
        frames_in_bound(4, 0.0, (0.0, 1.0))
