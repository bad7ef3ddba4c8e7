"""The bridge's torch-free and jax-free side: everything the JAX trainer imports (docs/design.md §1.3, §10).

- :mod:`~sam2_bridge.wire.codec`: framing, array encoding, decoding limits and the request envelope;
- :mod:`~sam2_bridge.wire.protocol`: the message schema (requests, replies, error codes, versions);
- :mod:`~sam2_bridge.wire.client` and :mod:`~sam2_bridge.wire.pool`: futures over one or more bridge servers,
  their health, and a local server subprocess;
- :mod:`~sam2_bridge.wire.budget`: what one request may cost a server (checked by the broker and the workers);
- :mod:`~sam2_bridge.wire.frames`: reading the clips a ``FrameRef`` names, under the server's data roots;
- :mod:`~sam2_bridge.wire.command`: the server command's contract (its module, exit statuses, token file);
- :mod:`~sam2_bridge.wire.constants`: the constants both packages need, defined once.

Nothing here imports torch, jax or :mod:`sam2_bridge.server` (``tests/test_layering.py`` checks it in a fresh
process and in the source).
"""
