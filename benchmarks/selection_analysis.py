"""What did each strategy select? Class mix and box counts of the images a loop run labeled.

Reads one or more `huale loop` run folders (their config.yaml names the dataset), and for every
strategy prints, averaged over seeds and summed over cycles 1..T-1's selections:

- boxes per selected image (detection AL tends to prefer crowded images: more labeling cost);
- the share of the selected boxes per class, next to the pool's share (does it find rare classes?);
- per-class AP at the last cycle, mean over seeds.

    python benchmarks/selection_analysis.py runs/synth-a runs/synth-b
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from huale.engine.loop import load_run_config, load_run_datasets
from huale.reports import load_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="voc")
    args = parser.parse_args()

    train, _ = load_run_datasets(load_run_config(args.runs[0]).data, progress=False)
    by_id = {r.image_id: r for r in train.records}
    names = train.class_names
    pool_share = train.class_counts() / max(1, train.class_counts().sum())
    records = load_records(args.runs)

    selected_labels: dict[str, list[np.ndarray]] = defaultdict(list)
    images: dict[str, int] = defaultdict(int)
    last_ap: dict[str, list[dict]] = defaultdict(list)
    last_cycle = max(r.cycle for r in records)
    for record in records:
        for chosen in record.selected:
            selected_labels[record.strategy].append(by_id[chosen["image_id"]].labels)
            images[record.strategy] += 1
        if record.cycle == last_cycle:
            last_ap[record.strategy].append(record.metrics[args.metric]["per_class"])

    strategies = sorted(selected_labels, key=lambda s: (s != "random", s))
    order = np.argsort(pool_share)  # rarest class first
    header = ["strategy", "boxes/img", *[f"{names[c]} ({100 * pool_share[c]:.1f}%)" for c in order]]
    print("### Share of selected boxes per class (%), rarest class first; header: the pool's share\n")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for strategy in strategies:
        labels = np.concatenate(selected_labels[strategy]) if selected_labels[strategy] else np.zeros(0, int)
        share = np.bincount(labels - 1, minlength=len(names)) / max(1, labels.size)
        cells = [f"{labels.size / max(1, images[strategy]):.2f}", *[f"{100 * share[c]:.1f}" for c in order]]
        print("| " + " | ".join([strategy, *cells]) + " |")

    print(f"\n### Per-class AP (%) at the last cycle ({args.metric}), mean over seeds, rarest class first\n")
    header = ["strategy", *[names[c] for c in order]]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for strategy in sorted(last_ap, key=lambda s: (s != "random", s)):
        cells = [f"{100 * np.mean([ap[names[c]] for ap in last_ap[strategy]]):.1f}" for c in order]
        print("| " + " | ".join([strategy, *cells]) + " |")


if __name__ == "__main__":
    main()
