"""The bridge's ``judge`` request: protocol validation, the transformers backend against ``generate`` run per
prompt, and the whole path through a real bridge subprocess (``--judge hf:DIR``) and ``make_judge``."""

import os

import pytest

from sam2_bridge.wire import protocol

PROMPTS = [
    "Rate the rationale from 0 to 5: the red circle leaves last.",
    "Score 0-3.",
    "Is the answer coherent? <think> the blue square is at the top right, so it is B </think> B",
    "A",
]
MAX_NEW = 6


# ------------------------------------------------------------------------------------------------- protocol
def test_judge_request_roundtrip_and_reply():
    req = protocol.JudgeRequest(PROMPTS, 7)
    message = protocol.make_request("j", req.TYPE, req.to_body())
    back = protocol.JudgeRequest.from_body(protocol.decode_message(message)["body"])
    assert back == req and back.prompts == tuple(PROMPTS) and back.max_new_tokens == 7
    reply = protocol.JudgeReply(("4", ""), {"judge_s": 0.25})
    got = protocol.JudgeReply.from_body(
        protocol.decode_message(protocol.make_reply("j", "judge", reply.to_body()))["body"]
    )
    assert got == reply
    assert "judge" in protocol.REQUEST_TYPES and protocol.REQUEST_CLASSES["judge"] is protocol.JudgeRequest


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompts": [], "max_new_tokens": 4}, "'prompts'"),
        ({"prompts": "one prompt", "max_new_tokens": 4}, "'prompts'"),
        ({"prompts": ["ok", 3], "max_new_tokens": 4}, "'prompts'[1]"),
        ({"prompts": ["x" * (protocol.JudgeRequest.MAX_PROMPT_CHARS + 1)], "max_new_tokens": 4}, "'prompts'[0]"),
        ({"prompts": ["ok"] * (protocol.JudgeRequest.MAX_PROMPTS + 1), "max_new_tokens": 4}, "'prompts'"),
        ({"prompts": ["ok"], "max_new_tokens": 513}, "'max_new_tokens'"),
        ({"prompts": ["ok"], "max_new_tokens": 0}, "'max_new_tokens'"),
        ({"prompts": ["ok"], "max_new_tokens": True}, "'max_new_tokens'"),
        ({"prompts": ["ok"], "max_new_tokens": "8"}, "'max_new_tokens'"),
        ({"prompts": ["ok"]}, "'max_new_tokens'"),
        ({"max_new_tokens": 4}, "'prompts'"),
    ],
)
def test_malformed_judge_bodies_name_the_field(body, field):
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.JudgeRequest.from_body(body)
    assert e.value.code == "bad_field" and field in e.value.message


def test_parse_judge_spec():
    from sam2_bridge.server.judge import parse_judge_spec

    assert parse_judge_spec("hf:checkpoints/judge") == ("hf", "checkpoints/judge")
    assert parse_judge_spec("transformers:rel/dir") == ("hf", "rel/dir")
    for bad in ("hf:", "checkpoints/judge", "vllm:x", ""):
        with pytest.raises(ValueError, match="hf:PATH"):
            parse_judge_spec(bad)


# ------------------------------------------------------------------------------------------- tiny judge model
@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer, special_token_ids

    tok = build_tiny_tokenizer()
    ids = special_token_ids()
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    path = tmp_path_factory.mktemp("tiny_judge")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _reference_texts(path, prompts, max_new_tokens):
    """``generate(do_sample=False)`` on each prompt alone, straight from transformers."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    out = []
    for p in prompts:
        enc = tok.apply_chat_template(
            [{"role": "user", "content": p}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
        out.append(tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


@pytest.fixture(scope="module")
def reference(judge_dir):
    texts = _reference_texts(judge_dir, PROMPTS, MAX_NEW)
    assert sum(len(t) > 0 for t in texts) >= 2  # the random model says something, so the comparison bites
    return texts


@pytest.mark.torch
def test_hf_judge_batched_left_padded_equals_generate_per_prompt(judge_dir, reference):
    from sam2_bridge.server.judge import HFJudge

    for max_batch in (1, 3):  # 3: one padded batch of three different lengths + one single prompt
        texts, timings = HFJudge(judge_dir, max_batch=max_batch).generate(PROMPTS, MAX_NEW)
        assert texts == reference, max_batch
        assert timings["judge_batches"] == -(-len(PROMPTS) // max_batch)


@pytest.mark.torch
def test_hf_judge_load_errors_name_the_path(tmp_path):
    from sam2_bridge.server.judge import HFJudge, JudgeLoadError

    with pytest.raises(JudgeLoadError, match="does not exist"):
        HFJudge(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "no_such_model"}')
    with pytest.raises(JudgeLoadError, match=str(tmp_path)):
        HFJudge(str(tmp_path))


# ------------------------------------------------------------------------------------------- through a bridge
@pytest.mark.torch
def test_judge_through_a_bridge_subprocess_and_make_judge(judge_dir, reference, tmp_path):
    from omnir1_jax.tasks.crossomni_judge import BridgeJudge, make_judge
    from sam2_bridge.wire.client import BridgeError

    judge = make_judge(f"hf:{judge_dir}", run_dir=str(tmp_path), max_new_tokens=MAX_NEW, timeout_s=120)
    try:
        assert isinstance(judge, BridgeJudge) and judge.server is not None and judge.server.alive()
        assert judge(PROMPTS) == reference
        client = judge.client
        health = client.health()
        assert health["judge"] == f"hf:{judge_dir}" and health["segmenter"] == "none"
        assert client.judge(PROMPTS[:2], MAX_NEW) == reference[:2]
        remote = make_judge(f"bridge:{client.addresses[0]}", max_new_tokens=MAX_NEW, timeout_s=60)
        try:
            assert remote(list(reversed(PROMPTS))) == list(reversed(reference))
        finally:
            remote.close()
        bad = [
            ({"prompts": [], "max_new_tokens": 4}, "prompts"),
            ({"prompts": [1, 2], "max_new_tokens": 4}, "prompts"),
            ({"prompts": ["ok"], "max_new_tokens": 100000}, "max_new_tokens"),
        ]
        for body, field in bad:
            with pytest.raises(BridgeError) as e:
                client.submit("judge", body, 30).result()
            assert e.value.code == "bad_field" and field in str(e.value)
        with pytest.raises(BridgeError) as e:  # this bridge has no segmenter
            client.submit(
                "ground", {"frames": {"array": __import__("numpy").zeros((1, 4, 4, 3), "uint8")}, "keyframes": []}, 30
            ).result()
        assert e.value.code == "no_segmenter"
        assert client.health()["workers"][0]["restarts"] == 0 and client.judge(["A"], MAX_NEW) == reference[3:]
    finally:
        judge.close()
    assert not judge.server.alive()


@pytest.mark.torch
def test_judge_to_a_bridge_without_judge_is_an_error_and_the_bridge_stays_up(tmp_path):
    from sam2_bridge.wire.client import BridgeClient, BridgeError
    from sam2_bridge.wire.pool import LocalServer

    address = f"ipc://{tmp_path}/nojudge.sock"
    server = LocalServer(
        [
            "--address",
            address,
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "synthetic",
            "--grounder",
            "synthetic",
        ],
        log_path=str(tmp_path / "bridge.log"),
    ).start()
    client = BridgeClient(address, deadline_s=60, local_server=server)
    try:
        client.wait_ready(60)
        with pytest.raises(BridgeError) as e:
            client.judge(["score this"], 4)
        assert e.value.code == "no_judge"
        with pytest.raises(BridgeError) as e:  # the judge check comes first: no worker sees it
            client.submit("judge", {"prompts": "not a list"}, 30).result()
        assert e.value.code == "no_judge"
        info = client.health()
        assert info["judge"] is None and info["workers"][0]["ready"] and server.alive()
    finally:
        client.close()
        server.stop()


@pytest.mark.torch
def test_serve_rejects_a_missing_judge_dir_at_once(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam2_bridge.serve",
            "--address",
            f"ipc://{tmp_path}/x.sock",
            "--device",
            "cpu",
            "--segmenter",
            "none",
            "--judge",
            f"hf:{tmp_path}/nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert r.returncode != 0 and f"{tmp_path}/nope" in r.stderr and "does not exist" in r.stderr
