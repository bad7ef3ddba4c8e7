"""The bridge's server side: the process behind ``python -m sam2_bridge.serve`` (docs/design.md §1.2, §9.4).

- :mod:`~sam2_bridge.server.cli`: the command's flags and ``main``;
- :mod:`~sam2_bridge.server.broker`: the ZeroMQ broker in front of the workers;
- :mod:`~sam2_bridge.server.worker`: one worker process per device, answering with a
  :mod:`~sam2_bridge.server.handler`;
- the models: :mod:`~sam2_bridge.server.grounder` (System 2; plug-ins, e.g.
  :mod:`~sam2_bridge.server.example_grounder`), :mod:`~sam2_bridge.server.segmenter` (SAM2's group pass, with
  :mod:`~sam2_bridge.server.memattn` and :mod:`~sam2_bridge.server.objects`; :mod:`~sam2_bridge.server.sam2_reference`
  is stock SAM2 for parity tests), :mod:`~sam2_bridge.server.judge` (a text model for judge rewards) and
  :mod:`~sam2_bridge.server.synthetic` (a weight-free grounder and segmenter for the synthetic world).

torch is imported by the modules that build or run a model (segmenter, memattn, sam2_reference) and by the
grounder and judge only when a model backend is built; nothing here imports jax. The client side
(:mod:`sam2_bridge.wire`) never imports this package.
"""
