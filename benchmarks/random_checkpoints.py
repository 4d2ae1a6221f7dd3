"""Random real-size checkpoints in the published formats, for throughput runs without real weights.

Writes DIR/<family>.npz and DIR/tokenizer.model (`tessera.models.random_weights`: bfloat16
big_vision npz through the family's own writer, a SentencePiece vocabulary of exactly the model's
size). The large arrays are drawn with JAX on the default device: a GPU draws the 3B in seconds.

    python benchmarks/random_checkpoints.py --family paligemma2-3b-224 --output /tmp/pg2
    python benchmarks/random_checkpoints.py --family siglip-tiny --output /tmp/sl   # CPU, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tessera.models.random_weights import FAMILIES, write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES))
    parser.add_argument("--output", required=True, help="directory for <family>.npz + tokenizer")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(write(args.family, args.output, args.dtype, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
