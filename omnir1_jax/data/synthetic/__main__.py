"""CLI: ``python -m omnir1_jax.data.synthetic --out DIR --videos N [--avs] [--seed S] [--height H --width W]``."""

from __future__ import annotations

import argparse
import sys

from omnir1_jax.data.synthetic import world, writer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m omnir1_jax.data.synthetic", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (must be empty or absent unless --overwrite)")
    p.add_argument("--videos", type=int, required=True, help="number of videos")
    p.add_argument("--avs", action="store_true", help="audio-visual variant in the Ref-AVS layout (default: ReVOS layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=world.DEFAULT_HEIGHT)
    p.add_argument("--width", type=int, default=world.DEFAULT_WIDTH)
    p.add_argument("--min-frames", type=int, default=24, help="VOS only")
    p.add_argument("--max-frames", type=int, default=48, help="VOS only")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.avs:
        out = writer.write_avs(a.out, a.videos, seed=a.seed, height=a.height, width=a.width, overwrite=a.overwrite)
    else:
        out = writer.write_vos(
            a.out, a.videos, seed=a.seed, height=a.height, width=a.width,
            min_frames=a.min_frames, max_frames=a.max_frames, overwrite=a.overwrite,
        )
    print(f"wrote {a.videos} {'AVS (Ref-AVS layout)' if a.avs else 'VOS (ReVOS layout)'} videos to {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
