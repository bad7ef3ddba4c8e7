"""sam2_bridge: the PyTorch process that serves System-2 grounding and SAM2 masks to the JAX trainer.

:mod:`sam2_bridge.protocol` and :mod:`sam2_bridge.client` import neither torch nor jax and are what the
trainer uses; the server, segmenter and grounder import torch. This package never imports JAX.
"""
