"""Command line of the built-in world: `python -m shapeworld generate --n 1000 --seed 0 --out DIR`."""

from __future__ import annotations

import argparse
import sys

from shapeworld.dataset import CAPTIONS_FILE, dataset_write
from shapeworld.scene import WorldConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shapeworld", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="render scenes with captions and hard negatives")
    generate.add_argument("--n", type=int, required=True, help="number of images")
    generate.add_argument("--seed", type=int, default=0, help="same seed, same dataset")
    generate.add_argument("--out", required=True, help="folder to write images/ and captions.jsonl into")
    generate.add_argument("--size", type=int, default=64, help="image side in pixels")
    generate.add_argument(
        "--grid", type=int, default=WorldConfig.grid, help="objects in the cells of an N x N layout; 0: anywhere"
    )
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be 0 or more")
    if args.grid < 0:
        parser.error("--grid must be 0 (anywhere) or more")
    world = WorldConfig(image_size=args.size, grid=args.grid)
    out = dataset_write(args.out, n=args.n, seed=args.seed, size=args.size, config=world, show_progress=True)
    print(f"wrote {args.n} images and {out / CAPTIONS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
