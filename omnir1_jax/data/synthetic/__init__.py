"""The synthetic world (coloured shapes; VOS in the ReVOS layout, audio-visual in the Ref-AVS layout).

``python -m omnir1_jax.data.synthetic --out DIR --videos N [--avs]`` writes a tree; :mod:`.world` holds the
simulation (numpy only: importing this package pulls in neither jax nor torch; its colours, shapes and background
are :mod:`sam2_bridge.wire.constants`'), :mod:`.avs` the tones, :mod:`.writer` the on-disk layouts.
"""
