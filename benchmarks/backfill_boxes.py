"""Add labeled-box counts to cycle records written before the loop recorded them.

Copies every ``record.json`` under the given run or records folders into OUT (same layout) with
``num_boxes`` = the ground-truth boxes of its ``labeled_ids`` in DATA's train split, so that
``huale report OUT`` adds mAP against labeled boxes and the gain at equal boxes. The records'
other fields are unchanged; ids missing from DATA are an error.

    python benchmarks/backfill_boxes.py docs/results/synthetic-cpu/records \
        --data data/synthetic-cpu --out runs/synthetic-cpu-boxes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from huale.data.loading import load_dataset
from huale.errors import DataError
from huale.io import atomic_write_json
from huale.reports.records import RECORD_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run or records folders")
    parser.add_argument("--data", required=True, help="the dataset the runs used (load_dataset source)")
    parser.add_argument("--split", default="train", help="the pool's split")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pool = load_dataset(args.data, args.split)
    written = 0
    for run in args.runs:
        for path in sorted(run.glob(f"*/seed*/cycle*/{RECORD_NAME}")):
            record = json.loads(path.read_text())
            missing = [i for i in record["labeled_ids"] if i not in set(pool.ids)]
            if missing:
                raise DataError(path, f"labeled id {missing[0]!r} is not in {args.data} ({args.split})")
            record["num_boxes"] = pool.subset(record["labeled_ids"]).num_boxes
            atomic_write_json(args.out / path.relative_to(run), record)
            written += 1
    print(f"{written} records with box counts in {args.out}")


if __name__ == "__main__":
    main()
