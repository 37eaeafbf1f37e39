"""Every report committed under docs/results regenerates, byte for byte, from its committed
records with the command its README gives: a change to ``huale report`` that would alter a
published table shows up here, and the published tables are re-made rather than left standing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from huale.cli import main

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
BCCD_CHOICE = ["--choose", "huale", "huale-no-class-weights", "huale-mu1.2", "huale-mu3"]
HUALE_CHOICE = ["--choose", "huale", "huale-no-class-weights"]

# report folder -> (records folders, further arguments), as each folder's README says
COMMITTED = {
    "bccd-cpu": (["bccd-cpu/records"], BCCD_CHOICE),
    "bccd-cpu/coco": (["bccd-cpu/records"], ["--metric", "coco", *BCCD_CHOICE]),
    "bccd-cpu-first-run": (["bccd-cpu-first-run/records"], HUALE_CHOICE),
    "synthetic-cpu": (["synthetic-cpu/records"], []),
    "synthetic-cpu-boxes": (["synthetic-cpu-boxes/records"], []),
    "synthetic-cpu-clips": (["synthetic-cpu-clips/records"], []),
    "synthetic-cpu-huale-ablation": (
        ["synthetic-cpu/records", "synthetic-cpu-huale-ablation/records"], []),
    "synthetic-cpu-independent-test": (["synthetic-cpu-independent-test/records"], []),
    "synthetic-cpu-rerun": (["synthetic-cpu-rerun/records"], []),
    "synthetic-cpu-validation": (["synthetic-cpu-validation/records"], HUALE_CHOICE),
    "synthetic-cpu-validation-all-arms": (["synthetic-cpu-validation-all-arms/records"], HUALE_CHOICE),
    "synthetic-cpu-validation-screening": (
        ["synthetic-cpu-validation-all-arms/records", "synthetic-cpu-validation-screening/records"],
        ["--baseline", "hua"]),
}


def test_every_committed_report_is_listed():
    """A new results folder with records gets a line above (loss-ablation has no records: its
    report comes from eval.json files, see its README)."""
    with_records = {str(p.parent.relative_to(RESULTS)) for p in RESULTS.glob("*/records")}
    assert with_records <= set(COMMITTED)


@pytest.mark.parametrize("folder", sorted(COMMITTED))
def test_committed_report_regenerates(folder, tmp_path):
    records, extra = COMMITTED[folder]
    assert main(["-q", "report", *[str(RESULTS / r) for r in records], "--out", str(tmp_path),
                 *extra]) == 0
    written = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert written == (RESULTS / folder / "report.md").read_text(encoding="utf-8")
