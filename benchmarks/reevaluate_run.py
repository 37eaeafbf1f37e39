"""Re-evaluate every model of finished `huale loop` runs on another test set.

Training and selection never look at the test split, so a run's models and selections do not
depend on it. Evaluating the same models on an independent set (for example a synthetic set drawn
with another generator seed) checks whether a ranking of strategies holds beyond the one test
split it was measured on. For each cycle record of RUN it evaluates that cycle's model on DATA
and writes a copy of the record, with the new metrics, under OUT (same layout). Then
`huale report OUT` draws the curves and tables. Records already written are skipped, so the
script resumes.

    huale synth --out data/synthetic-val --images 600 --seed 1 --test-fraction 0.5
    python benchmarks/reevaluate_run.py runs/synth-a runs/synth-b --data data/synthetic-val \\
        --split test --out runs/synth-val
    huale report runs/synth-val
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from huale.data.loading import load_dataset
from huale.engine.evaluate import evaluate_model
from huale.engine.loop import train_dir
from huale.engine.train import MODEL_NAME
from huale.io import atomic_write_json
from huale.models.checkpoint import build_from_checkpoint
from huale.reports.records import load_records, record_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="dataset source (any huale.data.load_dataset source)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", nargs="+", default=["voc"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    jobs = []
    for run_dir in args.runs:
        for record in load_records([run_dir]):
            jobs.append((run_dir, record))
    dataset = None
    cache: dict[Path, dict] = {}  # cycle 0 is shared by the strategies of a seed: evaluate once
    for run_dir, record in tqdm(jobs, desc="re-evaluate"):
        out = record_path(args.out, record.strategy, record.seed, record.cycle)
        if out.is_file():
            continue
        path = train_dir(run_dir, record.strategy, record.seed, record.cycle) / MODEL_NAME
        if path not in cache:
            model, class_names = build_from_checkpoint(path)
            if dataset is None:
                dataset = load_dataset(args.data, args.split, class_names=class_names)
            cache[path], _ = evaluate_model(model, dataset, args.metrics, batch_size=args.batch_size,
                                            device="cpu", workers=0, progress=False)
        atomic_write_json(out, asdict(replace(record, metrics=cache[path])))
    print(f"{len(jobs)} records in {args.out}; next: huale report {args.out}")


if __name__ == "__main__":
    main()
