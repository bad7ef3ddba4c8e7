"""CrossOmni's evaluation instructions: Table 17 (visual -> text as printed, the other eight directions worded for
their modalities), the default and chain-of-thought instructions, and their selection through ``data.qa_prompt``
(``--set`` and the evaluate CLI's flags)."""

import dataclasses

import pytest

from omnir1_jax.config import ConfigError, DataSpec, load_config
from omnir1_jax.crossomni.prompts import INSTRUCTION, qa_prompt, table17_instruction
from omnir1_jax.data.crossomni import TASKS, CrossOmniRecord

# Transcribed from the paper (CrossOmni appendix D, Table 17), lines that name the modalities.
PAPER_TABLE17 = [
    "Answer the question based on the video and the text information in options A/B/C/D.",
    "Your detailed step-by-step reasoning in natural language. Explain how you identify the person or object from "
    "the question and video, describe its visual appearance, find the Additional Information using that "
    "description, and then use the Additional Information to choose the correct option.",
    "(1) Carefully read the question and observe the video. First, use them to identify the person or object "
    "mentioned in the question.",
    "(2) Secondly, describe the visual appearance of this person or object in the video.",
    "(3) Thirdly, find the Additional Information about this person or object according to the visual description.",
    "(4) Then, answer the question based on the Additional Information.",
    "If you do NOT follow this format, your answer will be considered incorrect.",
]


def _rec(task):
    return CrossOmniRecord(
        id="q",
        video="v.mp4",
        audio=None,
        biography="Penny is blonde.",
        question="Who?",
        options=(("A", "w"), ("B", "x")),
        answer="A",
        task=task,
    )


def test_visual_to_text_is_table17_as_printed():
    lines = table17_instruction("Vi", "Te").splitlines()
    assert table17_instruction("Vi", "Te") == INSTRUCTION
    for line in PAPER_TABLE17:
        assert line in lines
    assert len(lines) == 18  # the 18 lines of the printed table


@pytest.mark.parametrize("task", TASKS)
def test_each_direction_names_its_source_and_target(task):
    src, dst = task.split("->")
    text = qa_prompt(_rec(task))
    observe = {"Vi": "observe the video", "Au": "listen to the audio", "Te": "read the text information"}[src]
    target = {
        "Te": "the Additional Information",
        "Vi": "the visual information in the video",
        "Au": "the audio information",
    }[dst]
    assert f"(1) Carefully read the question and {observe}." in text
    assert f"(4) Then, answer the question based on {target}." in text
    for other in {"Vi", "Au", "Te"} - {src}:
        assert {"Vi": "observe the video", "Au": "listen to the audio", "Te": "read the text information"}[
            other
        ] not in text
    assert text.endswith(_rec(task).question_text())
    # the output format the rewards check is the same in every direction
    assert "<think> ... </think>\nA/B/C/D" in text


def test_default_and_cot_instructions_are_the_papers():
    rec = _rec("Au->Vi")
    assert (
        qa_prompt(rec, "default").splitlines()[0]
        == "Answer this question based on the video and text information in A/B/C/D."
    )
    assert (
        qa_prompt(rec, "cot").splitlines()[0]
        == "Let's think step by step. Answer this question based on the video and text information in A/B/C/D."
    )
    assert "Think through the question" in qa_prompt(rec, "default", thinking=True).splitlines()[-1]
    with pytest.raises(ValueError, match="style"):
        qa_prompt(rec, "fancy")


def test_the_prompt_is_a_config_value_and_flags(tmp_path, monkeypatch):
    from omnir1_jax import evaluate
    from omnir1_jax.crossomni.batches import qa_batch
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer
    from tests.crossomni.fixtures import write_fixture

    path = tmp_path / "exp.py"
    path.write_text(
        "from omnir1_jax.config import DataSpec, ExperimentConfig\n"
        "def get_config():\n    return ExperimentConfig(name='exp', data=DataSpec(dataset='crossomni', "
        "task='qa'))\n"
    )
    cfg = load_config(str(path), ["data.qa_prompt=cot", "data.thinking=True", "data.s1_max_pixels=200704"])
    assert (cfg.data.qa_prompt, cfg.data.thinking, cfg.data.s1_max_pixels) == ("cot", True, 256 * 28 * 28)
    with pytest.raises(ConfigError, match="qa_prompt"):
        load_config(str(path), ["data.qa_prompt=fancy"])
    seen = {}

    def capture(cfg, split, **kw):  # the evaluation itself runs in the slow tests; here only what the flags set
        seen["cfg"], seen["split"] = cfg, split
        return {"markdown": "", "done": 0, "total": 0}

    monkeypatch.setattr(evaluate, "evaluate", capture)
    assert (
        evaluate.main(
            ["--config", str(path), "--split", "test", "--pixels", "200704", "--thinking", "--prompt", "default"]
        )
        == 0
    )
    d = seen["cfg"].data
    assert (d.s1_max_pixels, d.thinking, d.qa_prompt) == (200704, True, "default")
    assert evaluate.main(["--config", str(path)]) == 2  # CrossOmni needs its split named

    # the batches the policy sees carry the chosen instruction
    root = str(tmp_path / "co")
    write_fixture(root)
    from omnir1_jax.crossomni.batches import read_split

    tok = build_tiny_tokenizer()
    data = DataSpec(
        dataset="crossomni",
        root=root,
        split="test",
        task="qa",
        min_frames=2,
        max_frames=2,
        s1_max_pixels=4 * 784,
        s1_min_pixels=4 * 784,
        qa_prompt="cot",
    )
    rec = read_split(data, "test")[1]  # Au->Au
    ids = qa_batch([rec], tok, data)["model_inputs"]["input_ids"][0]
    text = tok.decode([int(i) for i in ids if int(i) != (tok.pad_token_id or 0)])
    assert "Let's think step by step." in text and "Carefully read the question" not in text
    ids = qa_batch([rec], tok, dataclasses.replace(data, qa_prompt="auto"))["model_inputs"]["input_ids"][0]
    text = tok.decode([int(i) for i in ids if int(i) != (tok.pad_token_id or 0)])
    assert "listen to the audio" in text  # Au->Au: Table 17 worded for the audio source
