"""The multiple-choice suite readers on their synthetic copies (published layouts) and on corrupt files.

Each reader's records are checked against the JSON / parquet the fixture wrote, read back here independently
(``json`` / ``pyarrow``), and against the letters a person reads off the fixture's tables; each malformed file
raises DataFormatError naming the file and the field.
"""

import ast
import json
import os

import pytest

from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.mcq import mcq_prompt
from omnir1_jax.data.suites import SUITE_NAMES, SUITES, read_suite
from omnir1_jax.data.suites_omni import MVBENCH_TASKS, read_mvbench, read_omnibench, read_videomme
from omnir1_jax.data.suites_ood import read_avut, read_dailyomni, read_worldsense
from omnir1_jax.data.synthetic import suites as synthetic_suites

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path):
    with open(path) as f:
        return json.load(f)


def _rewrite(path, fn):
    doc = _load(path)
    fn(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


def test_omnibench_reads_answer_texts_as_letters(tmp_path):
    root = synthetic_suites.write_omnibench(str(tmp_path))
    recs = read_omnibench(root)
    with open(os.path.join(root, "dataset", "batch-5_1142_20240817.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r.id for r in recs] == ["0", "1", "2"]
    # the fixture's answers are options 2, 0, 3: praying / one / drumming
    assert [r.answer for r in recs] == ["C", "A", "D"]
    assert [dict(r.options)[r.answer] for r in recs] == [row["answer"] for row in rows]
    assert [r.task for r in recs] == [row["task type"] for row in rows]
    assert recs[0].image == os.path.join(root, "mm_data", "image", "0_scene.png") and recs[0].video is None
    assert recs[2].audio == os.path.join(root, "mm_data", "audio", "2_clip.wav")
    assert recs[1].groups == (("audio type", "sound event"),)
    assert "(C) praying" in mcq_prompt(recs[0]) and recs[0].question in mcq_prompt(recs[0])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_videomme_parquet_and_its_jsonl_conversion(tmp_path, fmt):
    root = synthetic_suites.write_videomme(str(tmp_path), fmt=fmt)
    recs = read_videomme(root)
    assert [(r.id, r.answer, dict(r.groups)["duration"]) for r in recs] == [
        ("001-1", "B", "short"),
        ("001-2", "A", "short"),
        ("002-1", "D", "medium"),
        ("002-2", "C", "medium"),
        ("003-1", "A", "long"),
        ("003-2", "B", "long"),
    ]
    # the "A. " prefixes of the published options are dropped, the texts kept
    assert recs[0].options == (("A", "option a0"), ("B", "option b0"), ("C", "option c0"), ("D", "option d0"))
    assert recs[4].video == os.path.join(root, "data", "vidLong0001.mp4") and recs[4].task == "Counting Problem"


def test_mvbench_reads_all_twenty_tasks_with_bounds_and_frame_folders(tmp_path):
    root = synthetic_suites.write_mvbench(str(tmp_path))
    recs = read_mvbench(root)
    assert len({r.task for r in recs}) == 20 and len(recs) == 21
    by_id = {r.id: r for r in recs}
    seq = _load(os.path.join(root, "json", "action_sequence.json"))
    assert [by_id[f"action_sequence/{i}"].answer for i in range(2)] == ["A", "B"]  # candidates[0], candidates[1]
    assert dict(by_id["action_sequence/1"].options)["B"] == seq[1]["answer"]
    assert by_id["action_sequence/0"].bound == (0.0, 1.0) and by_id["action_antonym/0"].bound is None
    ep = by_id["episodic_reasoning/0"]
    assert (
        os.path.isdir(ep.video)
        and ep.frame_fps == 3.0
        and ep.video.endswith(os.path.join("tvqa", "frames_fps3_hq", "episodic_reasoning_0"))
    )
    assert len(by_id["action_prediction/0"].options) == 3  # odd tasks have three candidates
    assert [r.task for r in read_mvbench(root, tasks=["State Change"])] == ["State Change"]


def test_dailyomni_worldsense_avut(tmp_path):
    d = read_dailyomni(synthetic_suites.write_dailyomni(str(tmp_path / "d")))
    assert [(r.id, r.task, r.answer, dict(r.groups)["duration"]) for r in d] == [
        ("dOmniVid001/0", "AV Event Alignment", "C", "30s"),
        ("dOmniVid001/1", "Event Sequence", "A", "30s"),
        ("dOmniVid002/2", "Reasoning", "D", "60s"),
    ]
    assert d[2].video.endswith(os.path.join("Videos", "dOmniVid002", "dOmniVid002_video.mp4"))
    w = read_worldsense(synthetic_suites.write_worldsense(str(tmp_path / "w")))
    assert [(r.id, r.task, r.answer) for r in w] == [
        ("wsVideoA/task0", "Audio Recognition", "B"),
        ("wsVideoA/task1", "Object Counting", "D"),
        ("wsVideoB/task0", "Spatial Relation", "A"),
    ]
    assert w[0].options[1] == ("B", "choice B")
    root = synthetic_suites.write_avut(str(tmp_path / "a"))
    a = read_avut(root)
    assert [(r.id, r.answer) for r in a] == [("7", "A"), ("8", "C"), ("11", "B")]
    assert a[0].video == os.path.join(root, "data", "ytAAAAAAAAA.mp4")
    assert a[2].video == os.path.join(root, "ytBBBBBBBBB.mp4")  # not under data/: the repository's top level
    assert [r.id for r in read_suite("avut", root)] == ["7", "8", "11"]


def _corrupt(tmp_path, name):
    root = synthetic_suites.write_suite(name, str(tmp_path / name))
    return root


@pytest.mark.parametrize(
    "name, file, edit, field",
    [
        ("dailyomni", "qa.json", lambda d: d[1].update(Answer="E"), "'Answer'"),
        ("dailyomni", "qa.json", lambda d: d[0].pop("Question"), "'Question'"),
        (
            "worldsense",
            "worldsense_qa.json",
            lambda d: d["wsVideoB"]["task0"].update(candidates="A. x"),
            "'candidates'",
        ),
        ("avut", "AV_Human_data.json", lambda d: d[2].update(QA_id="11"), "'QA_id'"),
        ("avut", "AV_Human_data.json", lambda d: d[0].update(video_path="../../outside/x.mp4"), "'video_path'"),
        (
            "mvbench",
            os.path.join("json", "state_change.json"),
            lambda d: d[0].update(answer="not a candidate"),
            "'answer'",
        ),
        ("mvbench", os.path.join("json", "action_sequence.json"), lambda d: d[1].pop("end"), "'end'"),
    ],
)
def test_a_bad_field_names_the_file_the_entry_and_the_field(tmp_path, name, file, edit, field):
    root = _corrupt(tmp_path, name)
    path = os.path.join(root, file)
    _rewrite(path, edit)
    with pytest.raises(DataFormatError, match=field) as e:
        read_suite(name, root)
    assert e.value.path == path and e.value.record.startswith(name)


def test_file_level_errors(tmp_path):
    root = _corrupt(tmp_path, "omnibench")
    path = os.path.join(root, "dataset", "batch-5_1142_20240817.jsonl")
    with open(path, "a") as f:
        f.write('{"index": 9, "question": \n')
    with pytest.raises(DataFormatError, match="not valid JSON") as e:
        read_omnibench(root)
    assert e.value.path == path and e.value.record == "omnibench line 4"
    root = _corrupt(tmp_path, "videomme")
    pq_path = os.path.join(root, "videomme", "test-00000-of-00001.parquet")
    with open(pq_path, "wb") as f:
        f.write(b"PAR1 not really")
    with pytest.raises(DataFormatError, match="parquet") as e:
        read_videomme(root)
    assert e.value.path == pq_path
    os.unlink(pq_path)
    with pytest.raises(DataFormatError, match="neither"):
        read_videomme(root)
    root = _corrupt(tmp_path, "worldsense")
    os.unlink(os.path.join(root, "videos", "wsVideoB.mp4"))
    with pytest.raises(DataFormatError, match="not found") as e:
        read_worldsense(root)
    assert e.value.path.endswith("wsVideoB.mp4") and e.value.record == "worldsense wsVideoB"
    assert len(read_worldsense(root, check_files=False)) == 3
    root = _corrupt(tmp_path, "mvbench")
    os.unlink(os.path.join(root, "json", "fine_grained_pose.json"))
    with pytest.raises(DataFormatError, match="file not found") as e:
        read_mvbench(root)
    assert e.value.path.endswith("fine_grained_pose.json")
    assert len(MVBENCH_TASKS) == 20
    with pytest.raises(DataFormatError, match="no dataset"):
        read_omnibench(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown multiple-choice suite"):
        read_suite("mmlu", str(tmp_path))


def test_omnibench_and_videomme_field_errors(tmp_path):
    root = _corrupt(tmp_path, "omnibench")
    path = os.path.join(root, "dataset", "batch-5_1142_20240817.jsonl")
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    rows[1]["answer"] = "five"  # not one of the options
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError, match="'answer' = 'five'") as e:
        read_omnibench(root)
    assert e.value.path == path and e.value.record == "omnibench index 1"
    root = synthetic_suites.write_videomme(str(tmp_path / "vm"), fmt="jsonl")
    path = os.path.join(root, "videomme", "test.jsonl")
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    rows[3]["duration"] = "medium-long"
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError, match="'duration'") as e:
        read_videomme(root)
    assert e.value.path == path and e.value.record == "videomme 002-2"


def _data_imports(module: str) -> set[str]:
    """The ``omnir1_jax.data`` modules that ``module``'s file imports anywhere (function-local imports too)."""
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    with open(path) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "omnir1_jax.data":
            out |= {f"omnir1_jax.data.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("omnir1_jax.data."):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("omnir1_jax.data.")}
    return out


def test_imports_run_one_way_registry_readers_base():
    """The base (records, letters, helpers) imports no reader and no registry; the readers import the base, never
    the registry or each other; the registry imports both readers."""
    readers = {"omnir1_jax.data.suites_omni", "omnir1_jax.data.suites_ood"}
    assert _data_imports("omnir1_jax.data.mcq") == {"omnir1_jax.data.errors"}
    for r in readers:
        assert _data_imports(r) == {"omnir1_jax.data.errors", "omnir1_jax.data.mcq"}, r
    assert _data_imports("omnir1_jax.data.suites") == readers | {"omnir1_jax.data.mcq"}


def test_the_registry_and_the_command_line_name_the_same_suites():
    from omnir1_jax import evaluate

    assert (
        SUITE_NAMES == evaluate.SUITE_NAMES == ("omnibench", "videomme", "mvbench", "dailyomni", "worldsense", "avut")
    )
    assert [s.name for s in SUITES.values()] == list(SUITE_NAMES)
    assert SUITES["mvbench"].columns == (("MVBench Avg", "task_mean"),)
