"""TFDS ArrayRecord builder (no TensorFlow): the ArrayRecord copy feeds the same examples as the raw tree."""

import sys

import numpy as np

from omnir1_jax.data import readers
from omnir1_jax.data.pipeline import PipelineConfig, example_dataset


def test_arrayrecord_roundtrip_gives_same_examples(synthetic_vos, synthetic_avs, tiny_tokenizer, tmp_path):
    from omnir1_jax.data.tfds_builders import ArrayRecordExpressions, OmniR1Expressions

    for name, root, split, task in (
        ("synthetic", synthetic_vos, "train", "vos"),
        ("synthetic_avs", synthetic_avs, "test_n", "avs"),
    ):
        b = OmniR1Expressions(config=name, source_root=root, data_dir=str(tmp_path / "tfds"), splits=(split,))
        b.download_and_prepare()
        ar = ArrayRecordExpressions(b.as_data_source(split))
        raw = (
            readers.read_revos(root, split, dataset=name)
            if task == "vos"
            else readers.read_refavs(root, split, dataset=name)
        )
        assert len(ar) == len(raw)
        cfg = PipelineConfig(task=task, train=False, keep_frames=True)
        ex_ar = {(e["video_id"], e["exp_id"]): e for e in example_dataset(ar, tiny_tokenizer, cfg)}
        ex_raw = {(e["video_id"], e["exp_id"]): e for e in example_dataset(raw, tiny_tokenizer, cfg)}
        assert set(ex_ar) == set(ex_raw)
        for k, a in ex_ar.items():
            r = ex_raw[k]
            np.testing.assert_array_equal(a["frames"], r["frames"])  # same JPEG bytes, same decode
            np.testing.assert_array_equal(a["gt_masks"], r["gt_masks"])
            for name_ in a["model_inputs"]:
                np.testing.assert_array_equal(a["model_inputs"][name_], r["model_inputs"][name_])
            assert a["prompt"] == r["prompt"] and a["subset"] == r["subset"] and a["type_id"] == r["type_id"]
    assert "tensorflow" not in sys.modules
