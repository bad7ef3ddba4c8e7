"""Datasets for Omni-R1 / CrossOmni: readers of the published formats, Grain pipelines, the synthetic world.

Readers (one :class:`~omnir1_jax.data.schema.ExpressionRecord` per expression, masks decoded lazily):
:func:`read_revos`, :func:`read_mevis`, :func:`read_refavs`, :func:`read_refcocog`; CrossOmni JSONL:
:func:`read_crossomni`; AVHBench yes/no questions: :func:`read_avhbench`; the multiple-choice evaluation
suites (OmniBench, VideoMME, MVBench, Daily-Omni, WorldSense, AVUT) as :class:`MCQRecord`: :func:`read_suite`
(:mod:`omnir1_jax.data.suites`; synthetic copies in :mod:`omnir1_jax.data.synthetic.suites`). Pipelines:
:func:`build_pipeline` with a :class:`PipelineConfig`; the example / batch schema is documented in
:mod:`omnir1_jax.data.schema` and :mod:`omnir1_jax.data.pipeline`. The synthetic world:
``python -m omnir1_jax.data.synthetic --out DIR --videos N [--avs]``.

Iterate the training pipeline over a generated world::

    # python -m omnir1_jax.data.synthetic --out data/syn --videos 20
    from omnir1_jax.data import PipelineConfig, build_pipeline, read_revos
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    records = read_revos("data/syn", "train", dataset="synthetic")
    it = iter(build_pipeline(records, build_tiny_tokenizer(), PipelineConfig(batch_size=2, seed=0)))
    for _ in range(3):
        batch = next(it)
        print({k: getattr(v, "shape", v) for k, v in batch["model_inputs"].items()}, batch["num_frames"])
    state = it.get_state()  # save with the checkpoint; it.set_state(state) resumes with the same batches

Nothing here imports torch (the processor parity tests in ``tests/data`` do).
"""

import importlib

# Lazy exports: importing a submodule (e.g. ``omnir1_jax.data.synthetic.world``, which must not pull in jax)
# does not import Grain / jax through this package face.
_EXPORTS = {
    "AVHBenchRecord": "avhbench",
    "read_avhbench": "avhbench",
    "CrossOmniRecord": "crossomni",
    "read_crossomni": "crossomni",
    "DataFormatError": "errors",
    "MCQRecord": "mcq",
    "read_suite": "suites",
    "PipelineConfig": "pipeline",
    "build_pipeline": "pipeline",
    "collate": "pipeline",
    "example_dataset": "pipeline",
    "read_mevis": "readers",
    "read_refavs": "readers",
    "read_revos": "readers",
    "read_refcocog": "refcoco",
    "FPS_S1": "schema",
    "MODEL_INPUT_NAMES": "schema",
    "ExpressionRecord": "schema",
    "system2_view": "transforms",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"omnir1_jax.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'omnir1_jax.data' has no attribute {name!r}")


__all__ = [
    "FPS_S1",
    "MODEL_INPUT_NAMES",
    "AVHBenchRecord",
    "CrossOmniRecord",
    "DataFormatError",
    "ExpressionRecord",
    "MCQRecord",
    "PipelineConfig",
    "build_pipeline",
    "collate",
    "example_dataset",
    "read_avhbench",
    "read_crossomni",
    "read_mevis",
    "read_refavs",
    "read_refcocog",
    "read_revos",
    "read_suite",
    "system2_view",
]
