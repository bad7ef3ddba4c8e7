"""A worked example of a grounder plug-in: colours named in a local directory, found by colour distance.

The directory (the ``PATH`` of ``--grounder colour_table:PATH``) holds ``grounder.json``::

    {"colours": {"teal": [0, 128, 128], "pink": [255, 105, 180]}, "max_distance": 60, "min_area": 4}

A keyframe's description selects the colours it names; every 8-connected region of pixels within
``max_distance`` (Euclidean, RGB) of a selected colour with at least ``min_area`` pixels is one box. Run it::

    python -m sam2_bridge.serve --address ipc://bridge.sock --segmenter synthetic \\
        --grounder-plugin sam2_bridge/server/example_grounder.py --grounder colour_table:checkpoints/colour_table

(``--grounder-plugin sam2_bridge.server.example_grounder`` works too: a module name or a ``.py`` file). A real model
follows the same shape: the factory loads the weights from ``path`` once per worker, ``ground`` runs them on a
batch of keyframes and returns boxes in each keyframe's pixels (see :mod:`sam2_bridge.server.grounder` for the
interface and the README section "A different System 2" for a Sa2VA sketch).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from sam2_bridge.server.grounder import Grounding, register_grounder


class ColourTableGrounder:
    """Boxes of the regions whose colour a description names (the table comes from ``grounder.json``)."""

    def __init__(self, path: str, device: str = "cpu", **options: Any):
        # options (dtype, max_new_tokens, max_pixels) are for model grounders; a colour table uses none of them
        config = os.path.join(path, "grounder.json")
        try:
            with open(config, encoding="utf-8") as f:
                table = json.load(f)
            self.colours = {str(k).lower(): np.asarray(v, np.float32).reshape(3) for k, v in table["colours"].items()}
            self.max_distance = float(table.get("max_distance", 60))
            self.min_area = int(table.get("min_area", 4))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"colour_table grounder: {config} is not a readable table of colours ({exc})") from None
        self.name = f"colour_table:{path}"

    def ground(
        self, images: Sequence[np.ndarray], descriptions: Sequence[str], contexts: Sequence[str | None] | None = None
    ) -> list[Grounding]:
        """One :class:`Grounding` per keyframe; ``contexts`` (System 1's rationale) cannot help a colour table and
        is ignored."""
        out = []
        for image, description in zip(images, descriptions):
            words = set(re.findall(r"[a-z]+", description.lower()))
            boxes, labels = [], []
            for colour in (c for c in self.colours if c in words):
                near = np.linalg.norm(image.astype(np.float32) - self.colours[colour], axis=-1) <= self.max_distance
                regions, _ = ndimage.label(near, structure=np.ones((3, 3)))
                for i, sl in enumerate(ndimage.find_objects(regions)):
                    if (regions[sl] == i + 1).sum() >= self.min_area:
                        boxes.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
                        labels.append(colour)
            text = json.dumps([{"bbox_2d": list(b), "label": l} for b, l in zip(boxes, labels)])
            out.append(Grounding(np.asarray(boxes, np.float32).reshape(-1, 4), tuple(labels), text, True))
        return out


register_grounder("colour_table", ColourTableGrounder)
