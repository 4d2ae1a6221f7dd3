"""Byte-identity check for refactors: run three deterministic workloads, compare digests.

Runs, through the installed `tessera` command: a 4-shard mixture of the test sources, the SCAN
seed-0 MCD split, and a 16-network digits zoo (1 epoch). `--record FILE` writes the sha256 of
every output that must not change; `--check FILE` (default) reruns and compares, exit 1 on any
difference. Record on the old code, check on the new, on the same machine (zoo weights come from
XLA CPU kernels, which may differ between CPU models).

    python benchmarks/same_outputs.py --record /tmp/before.txt   # on the old checkout
    python benchmarks/same_outputs.py --check /tmp/before.txt    # on the new one
"""
from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import os
import shutil
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.pipelines.test_mixture import _config, _make_sources  # noqa: E402

OUTPUTS = ("mix/*.tfrecord", "scan0/split.json", "zoo/weights.npy", "zoo/layout.csv",
           "zoo/metrics.csv.gz")


def run_all(work: str) -> dict[str, str]:
    inputs, out = os.path.join(work, "in"), os.path.join(work, "out")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(inputs)
    _make_sources(inputs)
    cfg = _config(inputs)
    cfg["num_shards"] = 4
    with open(os.path.join(inputs, "mix.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    tessera = shutil.which("tessera", path=os.path.dirname(sys.executable)) or "tessera"
    for args in (["mixture", "--config", os.path.join(inputs, "mix.yaml"), "--output", f"{out}/mix"],
                 ["mcd-split", "--dataset", "scan", "--seed", "0", "--output", f"{out}/scan0"],
                 ["cnn-zoo", "--dataset", "digits", "--num-networks", "16", "--epochs", "1",
                  "--population", "8", "--output", f"{out}/zoo"]):
        subprocess.run([tessera, *args], check=True, capture_output=True)
    digests = {}
    for pattern in OUTPUTS:
        for path in sorted(glob.glob(os.path.join(out, pattern))):
            with open(path, "rb") as f:
                data = f.read()
            if path.endswith(".gz"):  # the content, not the header (older gzip headers hold a temp name)
                data = gzip.decompress(data)
            digests[os.path.relpath(path, out)] = hashlib.sha256(data).hexdigest()
    return digests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="FILE")
    mode.add_argument("--check", metavar="FILE")
    parser.add_argument("--work", default="/tmp/tessera_same_outputs")
    args = parser.parse_args(argv)
    digests = run_all(args.work)
    lines = [f"{d}  {name}" for name, d in sorted(digests.items())]
    if args.record:
        with open(args.record, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"recorded {len(lines)} digests in {args.record}")
        return 0
    with open(args.check) as f:
        before = dict(reversed(line.split("  ", 1)) for line in f.read().split("\n") if line)
    differ = sorted(n for n in set(before) | set(digests) if before.get(n) != digests.get(n))
    for name in differ:
        print(f"DIFFERENT {name}: before {before.get(name, '-')[:12]} now {digests.get(name, '-')[:12]}")
    print(f"{len(digests) - len(differ)}/{len(set(before) | set(digests))} outputs byte-identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
