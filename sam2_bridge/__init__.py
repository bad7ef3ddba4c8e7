"""sam2_bridge: the PyTorch process that serves System-2 grounding and SAM2 masks to the JAX trainer.

Two sides (docs/design.md §10): :mod:`sam2_bridge.wire` (protocol, wire format, client, budgets, frames, the
constants both packages need) imports neither torch nor jax and is all the trainer uses;
:mod:`sam2_bridge.server` (broker, workers, grounder, segmenter, judge) is the server process, started with
``python -m sam2_bridge.serve``. This package never imports JAX.
"""
