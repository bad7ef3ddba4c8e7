"""CrossOmni JSONL reader."""

import json

import pytest

from omnir1_jax.data.crossomni import TASKS, read_crossomni
from omnir1_jax.data.errors import DataFormatError


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


ROW = {
    "id": "q1",
    "video": "clips/a.mp4",
    "biography": "Sheldon grew up in Texas.",
    "question": "Who speaks first?",
    "options": ["Sheldon", "Leonard", "Penny", "Raj"],
    "answer": "B",
    "task": "Au->Te",
    "rationale": "step 1...",
}


def test_reader_fields_and_tasks(tmp_path):
    elsewhere = str(tmp_path.parent / "elsewhere" / "b.mp4")  # an absolute video path is kept as it is
    _write(
        tmp_path / "co.jsonl",
        [
            ROW,
            {
                **ROW,
                "id": "q2",
                "task": "Vi->Vi",
                "options": {"A": "x", "B": "y"},
                "answer": "A",
                "video": elsewhere,
                "audio": "b.wav",
            },
        ],
    )
    a, b = read_crossomni(str(tmp_path / "co.jsonl"))
    assert a.video == str(tmp_path / "clips/a.mp4") and a.audio is None and a.options[1] == ("B", "Leonard")
    assert (a.source, a.target, a.cross_modal) == ("Au", "Te", True) and b.cross_modal is False
    assert b.video == elsewhere and b.audio == str(tmp_path / "b.wav")
    assert "B. Leonard" in a.question_text() and "Sheldon grew up" in a.question_text()
    assert len(TASKS) == 9 and sum(s.split("->")[0] != s.split("->")[1] for s in TASKS) == 6


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({**ROW, "answer": "E"}, "answer"),
        ({**ROW, "task": "Au->Im"}, "task"),
        ({k: v for k, v in ROW.items() if k != "question"}, "question"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, bad, needle):
    _write(tmp_path / "co.jsonl", [ROW, bad])
    with pytest.raises(DataFormatError) as e:
        read_crossomni(str(tmp_path / "co.jsonl"))
    assert str(tmp_path / "co.jsonl") in str(e.value) and "line 2" in str(e.value) and needle in str(e.value)
