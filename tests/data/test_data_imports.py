"""Import hygiene: the data package never imports torch; the synthetic world imports neither jax nor torch."""

import subprocess
import sys

MODULES = [
    "omnir1_jax.data",
    "omnir1_jax.data.audio",
    "omnir1_jax.data.crossomni",
    "omnir1_jax.data.errors",
    "omnir1_jax.data.masks",
    "omnir1_jax.data.pipeline",
    "omnir1_jax.data.prompts",
    "omnir1_jax.data.readers",
    "omnir1_jax.data.refcoco",
    "omnir1_jax.data.rle",
    "omnir1_jax.data.schema",
    "omnir1_jax.data.text",
    "omnir1_jax.data.tfds_builders",
    "omnir1_jax.data.transforms",
    "omnir1_jax.data.vision",
    "omnir1_jax.data.synthetic.world",
    "omnir1_jax.data.synthetic.avs",
    "omnir1_jax.data.synthetic.writer",
]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_no_torch_anywhere_in_data():
    loaded = _loaded_after("\n".join(f"import {m}" for m in MODULES))
    assert "torch" not in loaded and "tensorflow" not in loaded


def test_world_imports_neither_jax_nor_torch():
    loaded = _loaded_after("import omnir1_jax.data.synthetic.world, omnir1_jax.data.synthetic.avs")
    assert not {"jax", "torch", "grain"} & loaded
