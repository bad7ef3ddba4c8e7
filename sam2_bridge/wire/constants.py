"""The constants both packages need, defined once (docs/design.md §10): ``omnir1_jax`` imports them from here
and the bridge uses them, so the two sides cannot drift apart. This module imports nothing.

- :data:`MAX_CONTEXT_CHARS`: the longest System-1 rationale one ``contexts`` entry of a ``ground`` /
  ``ground_and_segment`` request may carry (protocol version 3, docs/design.md §8.5); ``bridge.s2_context_chars``
  may not exceed it.
- :data:`PALETTE`, :data:`SHAPES`, :data:`BACKGROUND`: the synthetic world's colours, shapes and background.
  ``omnir1_jax.data.synthetic`` draws its videos with them; the bridge's synthetic grounder and segmenter
  (:mod:`sam2_bridge.server.synthetic`) recognise them.
"""

# a rationale cut to the client's budget is far shorter; this bounds what one request may make the grounder read
MAX_CONTEXT_CHARS = 4096

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 35),
    "green": (30, 170, 60),
    "blue": (30, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (140, 50, 190),
    "orange": (250, 130, 20),
    "cyan": (30, 210, 220),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUND: tuple[int, int, int] = (25, 25, 25)
