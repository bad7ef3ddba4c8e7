"""A resumed run logs each step exactly once: ``MetricsWriter.rewind(step)`` drops the records
of the steps after the restored checkpoint (they are re-run) and a torn last line, rewriting ``metrics.jsonl``
atomically; the learner calls it when it resumes."""

from __future__ import annotations

import json
import os
import struct

from omnir1_jax.runtime.metrics import MetricsWriter, read_jsonl


def _steps(path: str) -> list[int]:
    return [r["step"] for r in read_jsonl(path)]


def _events(path: str):
    """The TensorBoard events of one file (TFRecord framing: length, its CRC, the Event proto, its CRC)."""
    from tensorboardX.proto import event_pb2

    data, i, out = open(path, "rb").read(), 0, []
    while i < len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        out.append(event_pb2.Event.FromString(data[i + 12 : i + 12 + n]))
        i += 12 + n + 4
    return out


def test_rewind_drops_later_steps_and_a_torn_line_then_appends(tmp_path, capsys):
    out = str(tmp_path)
    w = MetricsWriter(out, tensorboard=True)
    for s in range(1, 6):
        w.write(s, {"loss": float(s)})
    w.write(5, {"eval/J&F": 0.5})  # an evaluation row at a later step goes too
    w.close()
    path = os.path.join(out, "metrics.jsonl")
    with open(path, "a") as f:
        f.write('{"step": 6, "loss": 0.')  # a run killed in the middle of a line
    w = MetricsWriter(out, tensorboard=True)
    assert w.rewind(3) == 4  # steps 4, 5, the evaluation at 5, the torn line
    assert "[metrics] resumed at step 3: dropped 4 record(s) of later steps" in capsys.readouterr().out
    for s in (4, 5):
        w.write(s, {"loss": 10.0 * s})
    w.close()
    rows = read_jsonl(path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and [r["loss"] for r in rows] == [1, 2, 3, 40, 50]
    assert all(json.loads(x) for x in open(path).read().splitlines())  # every line whole
    assert sorted(os.listdir(out)) == ["metrics.jsonl", "tb"]  # no temporary file left
    tb = os.path.join(out, "tb")
    # files end in ".PID-N", N counting the writers of the process: order by N as a number (10 after 9)
    first, resumed = [
        _events(os.path.join(tb, f)) for f in sorted(os.listdir(tb), key=lambda f: int(f.rsplit("-", 1)[-1]))
    ]
    assert [e.step for e in first if e.summary.value] == [1, 2, 3, 4, 5, 5]
    # the resumed writer starts with TensorBoard's purge marker (a session start at step 4), then logs 4 and 5
    start = [e for e in resumed if e.HasField("session_log")]
    assert [(e.step, e.session_log.status == e.session_log.START) for e in start] == [(4, True)]
    assert [(e.step, e.summary.value[0].simple_value) for e in resumed if e.summary.value] == [(4, 40.0), (5, 50.0)]


def test_rewind_with_nothing_to_drop_leaves_the_file_alone(tmp_path, capsys):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    w.write(1, {"loss": 1.0})
    path = w.path
    inode = os.stat(path).st_ino
    assert w.rewind(1) == 0 and w.rewind(7) == 0
    w.write(2, {"loss": 2.0})
    w.close()
    assert os.stat(path).st_ino == inode and _steps(path) == [1, 2]
    assert "[metrics]" not in capsys.readouterr().out


def test_rewind_to_zero_forgets_a_run_killed_before_its_first_checkpoint(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    w.write(1, {"loss": 1.0})
    w.write(2, {"loss": 2.0})
    with open(os.path.join(str(tmp_path), "metrics.jsonl.rewind-123"), "w") as f:
        f.write("half")  # a rewind killed before its rename
    assert w.rewind(0) == 2
    w.close()
    assert _steps(w.path) == [] and sorted(os.listdir(str(tmp_path))) == ["metrics.jsonl"]
