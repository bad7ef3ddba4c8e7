"""CLI: ``python -m omnir1_jax.data.synthetic --out DIR --videos N [--avs | --ambiguous] [--seed S] [--height H
--width W]``.

``--ambiguous``: a VOS world of ambiguous scenes (two look-alikes per video told apart only by when they appear
or which way they move; :mod:`omnir1_jax.data.synthetic.ambiguous`), where the one-way pipeline fails.
"""

from __future__ import annotations

import argparse
import sys

from omnir1_jax.data.synthetic import world, writer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m omnir1_jax.data.synthetic", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (must be empty or absent unless --overwrite)")
    p.add_argument("--videos", type=int, required=True, help="number of videos")
    p.add_argument(
        "--avs", action="store_true", help="audio-visual variant in the Ref-AVS layout (default: ReVOS layout)"
    )
    p.add_argument(
        "--ambiguous",
        action="store_true",
        help="VOS world of ambiguous scenes: two same-looking objects that differ in when they appear or "
        "which way they move, and expressions that need both",
    )
    p.add_argument(
        "--objects",
        type=int,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="objects per VOS video, inclusive (default 3 5; --ambiguous: 2 look-alikes + distractors)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=world.DEFAULT_HEIGHT)
    p.add_argument("--width", type=int, default=world.DEFAULT_WIDTH)
    p.add_argument("--min-frames", type=int, default=24, help="VOS only")
    p.add_argument("--max-frames", type=int, default=48, help="VOS only")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.avs and (a.ambiguous or a.objects):
        p.error("--ambiguous / --objects describe a VOS world; they cannot be combined with --avs")
    if a.avs:
        out = writer.write_avs(a.out, a.videos, seed=a.seed, height=a.height, width=a.width, overwrite=a.overwrite)
    else:
        out = writer.write_vos(
            a.out,
            a.videos,
            seed=a.seed,
            height=a.height,
            width=a.width,
            min_frames=a.min_frames,
            max_frames=a.max_frames,
            overwrite=a.overwrite,
            ambiguous=a.ambiguous,
            **({"objects": tuple(a.objects)} if a.objects else {}),
        )
    kind = "AVS (Ref-AVS layout)" if a.avs else f"{'ambiguous ' if a.ambiguous else ''}VOS (ReVOS layout)"
    print(f"wrote {a.videos} {kind} videos to {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
