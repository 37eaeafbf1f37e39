"""How alike are two strategies' picks, and do equal labeled sets give equal models?

Reads the records of `huale loop` runs (run folders or committed ``records`` folders; records of
a seed must come from one machine) and prints, per seed and for each pair of the given
strategies:

- ``first picks``: how many of the 30 (the budget) images picked from the shared cycle-0 model
  both strategies picked;
- ``cycle 1``: whether the two trained cycle 1 on the same labeled images, in the same listed
  order, and their cycle-1 test mAP (VOC@0.5). Equal sets in another order train differently:
  this prints how much that alone moves mAP.

    python benchmarks/pick_overlap.py docs/results/synthetic-cpu-validation-all-arms/records \\
        --strategies hua huale huale-no-class-weights
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from huale.reports import load_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or records folders")
    parser.add_argument("--strategies", nargs="+", required=True, help="at least two labels")
    parser.add_argument("--metric", default="voc")
    args = parser.parse_args()
    if len(args.strategies) < 2:
        parser.error("give at least two --strategies")

    records = {(r.strategy, r.seed, r.cycle): r for r in load_records(args.runs)}
    seeds = sorted({seed for (_, seed, _) in records})
    for seed in seeds:
        print(f"seed {seed}")
        for a, b in itertools.combinations(args.strategies, 2):
            first = [records.get((name, seed, 0)) for name in (a, b)]
            second = [records.get((name, seed, 1)) for name in (a, b)]
            if None in first or None in second:
                print(f"  {a} / {b}: not both run on this seed")
                continue
            picks = [{s["image_id"] for s in r.selected} for r in first]
            ids = [r.labeled_ids for r in second]
            same_set = set(ids[0]) == set(ids[1])
            order = "same order" if ids[0] == ids[1] else "other order" if same_set else "different images"
            maps = [100 * r.value(args.metric, None, "test") for r in second]
            print(f"  {a} / {b}: first picks shared {len(picks[0] & picks[1])}/{len(picks[0])}; "
                  f"cycle 1: {order}, test mAP {maps[0]:.2f} / {maps[1]:.2f}")


if __name__ == "__main__":
    main()
