"""How often does each strategy spend its budget on near-duplicates? Picks from clips.

For a loop run on a synthetic pool cut into clips (`huale synth --clip-length N`, preset
`synthetic-cpu-clips`), counts per strategy, over every seed and every cycle that selected:

- redundant picks: the share of picked images whose clip was already labeled (an image of it in
  the labeled set before the cycle) or already picked earlier in the same batch;
- clips per batch: distinct clips among a batch's picks, as a share of the batch.

A strategy that scores images one at a time can rank all frames of one uncertain clip first;
diversity (coreset) and a random sample should spread over clips. Reads the records of one or
more run (or records) folders and DATA/synthetic.json:

    python benchmarks/clip_redundancy.py runs/clips --data data/synthetic-cpu-clips
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from huale.reports import load_records


def redundancy(records, image_clip: dict[str, int]) -> dict[str, dict[str, float]]:
    """``{strategy: {"picks", "redundant", "clips_per_batch"}}`` (shares in [0, 1])."""
    picks: dict[str, int] = defaultdict(int)
    redundant: dict[str, int] = defaultdict(int)
    spread: dict[str, list[float]] = defaultdict(list)
    for record in records:
        chosen = [c["image_id"] for c in record.selected]
        if not chosen:
            continue
        seen = {image_clip[i] for i in record.labeled_ids if i in image_clip}
        batch = set()
        for image_id in chosen:
            clip = image_clip.get(image_id)
            if clip is None:
                raise SystemExit(f"image {image_id!r} of {record.strategy} seed {record.seed} is "
                                 "not in a clip: is --data the run's synthetic folder?")
            redundant[record.strategy] += clip in seen
            picks[record.strategy] += 1
            seen.add(clip)
            batch.add(clip)
        spread[record.strategy].append(len(batch) / len(chosen))
    return {s: {"picks": picks[s], "redundant": redundant[s] / picks[s],
                "clips_per_batch": sum(spread[s]) / len(spread[s])} for s in picks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="loop run or records folders")
    parser.add_argument("--data", type=Path, required=True,
                        help="the synthetic folder the runs used (its synthetic.json)")
    args = parser.parse_args()
    marker = args.data / "synthetic.json"
    try:
        image_clip = json.loads(marker.read_text(encoding="utf-8"))["image_clip"]
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"{marker}: no clip list ({exc}); make the pool with huale synth --clip-length N")
    results = redundancy(load_records(args.runs), image_clip)
    print("| strategy | picks | redundant picks | clips per batch |")
    print("|---|---|---|---|")
    for strategy in sorted(results, key=lambda s: (s != "random", s)):
        r = results[strategy]
        print(f"| {strategy} | {r['picks']} | {100 * r['redundant']:.1f}% | "
              f"{100 * r['clips_per_batch']:.1f}% |")
    print("\nredundant: picked although its clip was labeled or already picked in the batch; "
          "clips per batch: distinct clips / batch size (100%: every pick from another clip)")


if __name__ == "__main__":
    main()
