"""The synthetic world (coloured shapes; VOS in the ReVOS layout, audio-visual in the Ref-AVS layout).

``python -m omnir1_jax.data.synthetic --out DIR --videos N [--avs]`` writes a tree; :mod:`.world` holds the
palette / shape contract and the simulation (numpy only: importing this package pulls in neither jax nor
torch), :mod:`.avs` the tones, :mod:`.writer` the on-disk layouts.
"""

from omnir1_jax.data.synthetic.world import BACKGROUND, PALETTE, SHAPES

__all__ = ["BACKGROUND", "PALETTE", "SHAPES"]
