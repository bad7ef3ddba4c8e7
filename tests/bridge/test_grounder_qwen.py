"""A tiny random Qwen2.5-VL grounder, built offline and loaded from its directory, runs end to end."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sam2_bridge.server.grounder import QwenBackend, parse_grounding  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def tiny_qwen_dir(tmp_path_factory):
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer, special_token_ids

    tok = build_tiny_tokenizer()
    ids = special_token_ids()
    cfg = transformers.Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            tie_word_embeddings=True,
            bos_token_id=ids["<|im_start|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            num_heads=2,
            intermediate_size=64,
            out_hidden_size=64,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            fullatt_block_indexes=[1],
            window_size=56,
        ),
        image_token_id=ids["<|IMAGE|>"],
        video_token_id=ids["<|VIDEO|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
    )
    torch.manual_seed(0)
    model = transformers.Qwen2_5_VLForConditionalGeneration(cfg).eval()
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(),
        tokenizer=tok,
        video_processor=transformers.Qwen2VLVideoProcessor(),
        chat_template=tok.chat_template,
    )
    path = tmp_path_factory.mktemp("tiny_qwen")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def test_tiny_qwen2_5_vl_grounds_batched_like_one_by_one(tiny_qwen_dir):
    backend = QwenBackend(
        "qwen2_5_vl", tiny_qwen_dir, max_new_tokens=12, max_pixels=48 * 28 * 28, min_pixels=4 * 28 * 28, batch_size=8
    )
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (90, 120, 3), dtype=np.uint8),
        rng.integers(0, 255, (56, 200, 3), dtype=np.uint8),
        rng.integers(0, 255, (70, 70, 3), dtype=np.uint8),
    ]
    descs = ["the red circle", "blue square on the left", "a"]
    batched = backend.ground(images, descs)
    assert len(batched) == 3
    for image, desc, g in zip(images, descs, batched):
        # the output parses (even if empty) and boxes are the parser's mapping of the raw text
        assert g.boxes.dtype == np.float32 and g.boxes.shape[1] == 4
        inputs = backend.processor(text=[backend._prompt_text(desc)], images=[image], return_tensors="pt")
        grid = inputs["image_grid_thw"][0].tolist()
        resized = (grid[1] * 14, grid[2] * 14)
        ref = parse_grounding(g.text, resized, image.shape[:2])
        np.testing.assert_array_equal(ref.boxes, g.boxes)
        assert ref.parsed == g.parsed
        # greedy decoding of a left-padded batch equals decoding the keyframe alone
        with torch.inference_mode():
            ids = backend.model.generate(**inputs, do_sample=False, max_new_tokens=12)
        alone = backend.processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
        assert alone == g.text
    assert backend.ground(images[:1], descs[:1])[0].text == batched[0].text


def test_system1_context_reaches_the_grounding_prompt_within_its_budget(tiny_qwen_dir):
    """``bridge.s2_context``: a version-3 ``ground`` body with a context, answered by the handler a worker runs, is
    decoded from the prompt written here by hand (the cut rationale, nothing past the budget)."""
    from omnir1_jax.rewards import extract_rationale
    from sam2_bridge.server.handler import Handler, HandlerConfig
    from sam2_bridge.wire import protocol

    answer = (
        "<think>Two red circles look the same. The one that appears second is the target; the first one "
        "stays still near the top while the second enters from the right.</think><answer>[]</answer>"
    )
    budget = 60
    cut = extract_rationale(answer, budget)
    assert cut == "Two red circles look the same. The one that appears second"  # cut at a word by hand
    rest = "is the target"  # what lies past the budget
    handler = Handler(
        HandlerConfig(
            segmenter="synthetic",
            grounder=f"qwen2_5_vl:{tiny_qwen_dir}",
            grounder_max_new_tokens=12,
            grounder_max_pixels=48 * 28 * 28,
        )
    )
    backend = handler.grounder

    class Recording:  # the real processor, recording the prompts the backend hands it
        def __init__(self, inner):
            self.inner, self.texts = inner, []

        def __call__(self, *args, text=None, **kw):
            self.texts += list(text)
            return self.inner(*args, text=text, **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    backend.processor = Recording(backend.processor)
    image = np.random.default_rng(3).integers(0, 255, (2, 70, 90, 3), dtype=np.uint8)
    keyframes = (protocol.Keyframe(0, "the red circle"), protocol.Keyframe(1, "the red circle"))
    request = protocol.GroundRequest(image, keyframes, (cut, None))
    reply = protocol.GroundReply.from_body(
        handler.handle(
            "ground", protocol.decode_message(protocol.make_request("c", "ground", request.to_body()))["body"]
        )
    )
    written = (
        'A model that watched the whole video reasoned about it as follows: "Two red circles look the same. '
        'The one that appears second"\nUse this reasoning to decide which object the description refers '
        'to. Locate every object that matches the description "the red circle" in the image and output the '
        "bbox coordinates in JSON format."
    )
    plain = written[written.index("Locate") :]
    assert len(backend.processor.texts) == 2 and len(reply.texts) == 2
    with_context, without = backend.processor.texts
    assert written in with_context and rest not in with_context
    assert plain in without and "reasoned" not in without
    assert with_context == without.replace(plain, written)  # the same chat, the context ahead of the instruction


def test_backend_from_a_model_in_memory_grounds_like_the_one_loaded_from_its_directory(tiny_qwen_dir):
    """``QwenBackend.from_model``: the model and processor already in memory (what a benchmark with random weights
    builds) give the same answers as the backend loading them from the directory; a model of the other kind's
    class is refused by name."""
    loaded = QwenBackend(
        "qwen2_5_vl", tiny_qwen_dir, max_new_tokens=12, max_pixels=48 * 28 * 28, min_pixels=4 * 28 * 28, batch_size=2
    )
    model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen_dir)
    processor = transformers.AutoProcessor.from_pretrained(tiny_qwen_dir)
    memory = QwenBackend.from_model(
        "qwen2_5_vl", model, processor, max_new_tokens=12, max_pixels=48 * 28 * 28, min_pixels=4 * 28 * 28, batch_size=2
    )
    assert memory.name == "qwen2_5_vl:<in memory>" and memory.batch_size == 2 and memory.patch == loaded.patch
    assert processor.tokenizer.padding_side == "left"
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (60, 90, 3), dtype=np.uint8), rng.integers(0, 255, (84, 56, 3), dtype=np.uint8)]
    descs = ["the red circle", "a blue square"]
    want, got = loaded.ground(images, descs), memory.ground(images, descs)
    assert [g.text for g in got] == [g.text for g in want]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.boxes, b.boxes)
    with pytest.raises(TypeError, match="not the 'qwen2_5_omni' class"):
        QwenBackend.from_model("qwen2_5_omni", model, processor)
    with pytest.raises(ValueError, match="description"):
        QwenBackend.from_model("qwen2_5_vl", model, processor, prompt="no placeholder")
